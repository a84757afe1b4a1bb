//! `exclude_newer` and `--exclude-newer`: a calendar date or an RFC 3339
//! time, parsed by a date library, so that an impossible date (`2023-02-30`,
//! `2024-12-99`) is refused instead of rolling over.

/// The forms accepted, for messages.
pub const FORMS: &str =
    "YYYY-MM-DD (the whole day counts, UTC) or an RFC 3339 time such as 2023-05-03T12:00:00Z";

/// The cutoff as it is kept: `YYYY-MM-DD`, or an RFC 3339 time in UTC.
pub fn exclude_newer(text: &str) -> Result<String, String> {
    let t = text.trim();
    let parsed = if t.len() == 10 {
        t.parse::<jiff::civil::Date>().map(|d| d.to_string())
    } else {
        t.parse::<jiff::Timestamp>().map(|ts| ts.to_string())
    };
    parsed.map_err(|e| format!("`{text}` is not a date ({e}): write {FORMS}"))
}

/// Whether a file uploaded at `uploaded` (RFC 3339) is not after `cutoff`
/// (as [`exclude_newer`] keeps it). An upload time that cannot be read is
/// compared as text, as the index wrote it.
pub fn uploaded_by(uploaded: &str, cutoff: &str) -> bool {
    let Ok(at) = uploaded.parse::<jiff::Timestamp>() else {
        return uploaded.get(..cutoff.len()).unwrap_or(uploaded) <= cutoff;
    };
    if let Ok(day) = cutoff.parse::<jiff::civil::Date>() {
        // Timestamps print in UTC: their first ten characters are the day.
        return at.to_string().get(..10).unwrap_or("") <= day.to_string().as_str();
    }
    match cutoff.parse::<jiff::Timestamp>() {
        Ok(limit) => at <= limit,
        Err(_) => uploaded <= cutoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_dates_are_refused_with_the_accepted_forms() {
        for bad in [
            "2023-13-45",
            "2023-02-30",
            "2024-12-99",
            "yesterday",
            "2023-05-03T25:00:00Z",
            "",
        ] {
            let e = exclude_newer(bad).unwrap_err();
            assert!(e.contains("write YYYY-MM-DD"), "{bad}: {e}");
        }
        assert_eq!(exclude_newer("2024-02-29").unwrap(), "2024-02-29");
        assert_eq!(
            exclude_newer("2023-05-03T14:00:00+02:00").unwrap(),
            "2023-05-03T12:00:00Z"
        );
    }

    #[test]
    fn a_day_includes_its_uploads_and_a_time_is_exact() {
        assert!(uploaded_by("2023-05-03T23:59:59.123456Z", "2023-05-03"));
        assert!(!uploaded_by("2023-05-04T00:00:00Z", "2023-05-03"));
        // Offsets are times, not text.
        assert!(uploaded_by(
            "2023-05-03T13:00:00+02:00",
            "2023-05-03T12:00:00Z"
        ));
        assert!(!uploaded_by("2023-05-03T12:00:01Z", "2023-05-03T12:00:00Z"));
    }
}
