//! Geo lookups against MaxMind's own test databases, checked against MaxMind's published
//! source data for them (fixtures fetched by scripts/setup into $MM_FIXTURES/mmdb).

use millimetric_core::enrich::geo_db::GeoDb;
use std::net::IpAddr;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    millimetric_tools::fixtures_dir().join("mmdb")
}

fn load(name: &str) -> GeoDb {
    let p = fixtures().join(name);
    GeoDb::from_bytes(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}; run scripts/setup", p.display()))).unwrap()
}

#[test]
#[ignore = "needs fixtures: run scripts/test (or scripts/setup first)"]
fn city_test_db_matches_maxmind_source_data() {
    let db = load("GeoIP2-City-Test.mmdb");
    let source: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("GeoIP2-City-Test.json")).unwrap()).unwrap();
    let mut checked = 0;
    for entry in &source {
        for (network, rec) in entry {
            let ip: IpAddr = network.split('/').next().unwrap().parse().unwrap();
            let want_country = rec["country"]["iso_code"].as_str().unwrap_or("");
            let want_region = rec["subdivisions"][0]["names"]["en"].as_str().unwrap_or("");
            let want_city = rec["city"]["names"]["en"].as_str().unwrap_or("");
            let got = db.lookup(ip);
            if want_country.is_empty() {
                // Records without a country (anonymous proxies, satellite) yield no geo.
                assert!(got.is_none() || got.as_ref().unwrap().country.is_empty(), "{network}: {got:?}");
                continue;
            }
            let got = got.unwrap_or_else(|| panic!("{network}: no geo, expected {want_country}"));
            assert_eq!((got.country.as_str(), got.region.as_str(), got.city.as_str()), (want_country, want_region, want_city), "{network}");
            checked += 1;
        }
    }
    println!("GeoIP2-City-Test: {checked} networks agree with MaxMind's source data");
    assert!(checked > 100, "expected to check the whole test database, checked {checked}");
    // Well-known examples of MaxMind's test data.
    let london = db.lookup("81.2.69.142".parse().unwrap()).unwrap();
    assert_eq!((london.country.as_str(), london.region.as_str(), london.city.as_str()), ("GB", "England", "London"));
    assert!(db.lookup("10.0.0.1".parse().unwrap()).is_none(), "private addresses have no geo");
}

#[test]
#[ignore = "needs fixtures: run scripts/test (or scripts/setup first)"]
fn country_db_and_broken_db() {
    let db = load("GeoIP2-Country-Test.mmdb");
    let g = db.lookup("81.2.69.142".parse().unwrap()).unwrap();
    assert_eq!((g.country.as_str(), g.city.as_str()), ("GB", ""));
    // A database with a broken search tree must not panic on lookups.
    if let Ok(broken) = GeoDb::from_bytes(std::fs::read(fixtures().join("broken.mmdb")).unwrap()) {
        for ip in ["1.1.1.1", "81.2.69.142", "::1", "2001:218::1"] {
            let _ = broken.lookup(ip.parse().unwrap());
        }
    }
}
