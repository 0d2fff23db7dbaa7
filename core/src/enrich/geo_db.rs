//! Geo for IPs that server SDKs forward: a MaxMind-format database (read from bytes, so it
//! works the same in the Worker, which loads it from KV, and natively). Two layouts are read:
//! GeoIP2/GeoLite2 (`country.iso_code`, `subdivisions[0].names.en`, `city.names.en`) and the
//! flat DB-IP Lite layout (`country_code`, `state1`, `city`). DB-IP names a city's district
//! in parentheses ("Amsterdam (Amsterdam-Centrum)"): only the city is kept, as coarse as the
//! edge's own geo.

use super::geo::Geo;
use maxminddb::{path, Reader};
use std::net::IpAddr;

pub struct GeoDb {
    reader: Reader<Vec<u8>>,
}

impl GeoDb {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, String> {
        Reader::from_source(bytes).map(|reader| GeoDb { reader }).map_err(|e| format!("not a MaxMind DB: {e}"))
    }

    /// Coarse geo of `ip`, or None when the database has nothing for it (private ranges,
    /// unknown addresses) or the record is malformed. Never panics on a bad database.
    pub fn lookup(&self, ip: IpAddr) -> Option<Geo> {
        let found = self.reader.lookup(ip).ok()?;
        if !found.has_data() {
            return None;
        }
        let s = |p: &[maxminddb::PathElement<'_>]| found.decode_path::<String>(p).ok().flatten();
        let geo = match s(&path!["country", "iso_code"]) {
            Some(country) => Geo::new(
                Some(&country),
                s(&path!["subdivisions", 0, "names", "en"]).as_deref(),
                s(&path!["city", "names", "en"]).as_deref(),
            ),
            None => Geo::new(
                s(&path!["country_code"]).as_deref(),
                s(&path!["state1"]).as_deref(),
                s(&path!["city"]).as_deref().map(without_district),
            ),
        };
        (!geo.country.is_empty()).then_some(geo)
    }
}

/// "Zurich (Zurich (Kreis 1) / Hochschulen)" -> "Zurich": DB-IP's city without its district.
fn without_district(city: &str) -> &str {
    match city.find(" (") {
        Some(0) | None => city,
        Some(i) => &city[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dbip_districts_are_dropped() {
        assert_eq!(without_district("Amsterdam (Amsterdam-Centrum)"), "Amsterdam");
        assert_eq!(without_district("Zurich (Zurich (Kreis 1) / Hochschulen)"), "Zurich");
        assert_eq!(without_district("San Jose (Tasman and Zanker)"), "San Jose");
        assert_eq!(without_district("Mountain View"), "Mountain View");
        assert_eq!(without_district(" (odd)"), " (odd)");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(GeoDb::from_bytes(b"not a database".to_vec()).is_err());
        assert!(GeoDb::from_bytes(Vec::new()).is_err());
    }
}
