//! Coarse geo: country (ISO 3166-1 alpha-2), region, city. At the edge it comes from what
//! Cloudflare resolved for the connection; for server-key events that forward a visitor IP
//! it comes from a MaxMind-format database. Either way the IP itself goes no further.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Geo {
    pub country: String,
    pub region: String,
    pub city: String,
}

impl Geo {
    /// Normalise what an edge or database says: upper-case country code, and Cloudflare's
    /// placeholders (`XX` unknown, `T1` Tor) as unknown.
    pub fn new(country: Option<&str>, region: Option<&str>, city: Option<&str>) -> Geo {
        let country = country.map(|c| c.trim().to_ascii_uppercase()).unwrap_or_default();
        let country = if country.len() == 2 && country != "XX" && country != "T1" && country.bytes().all(|b| b.is_ascii_uppercase()) {
            country
        } else {
            String::new()
        };
        let clip = |s: Option<&str>| s.map(|s| s.trim().chars().take(100).collect()).unwrap_or_default();
        Geo { country, region: clip(region), city: clip(city) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_edge_values() {
        assert_eq!(Geo::new(Some("gb"), Some("England"), Some("London")).country, "GB");
        assert_eq!(Geo::new(Some("XX"), None, None).country, "");
        assert_eq!(Geo::new(Some("T1"), None, None).country, "");
        assert_eq!(Geo::new(Some("USA"), None, None).country, "");
        assert_eq!(Geo::new(None, None, None), Geo::default());
    }
}
