use serde_json::Value;
use vigil_core::Event;

use crate::{parse_json, DecodeError, IdSource};

/// Most events PutEvents accepts in one call is 10; vigil is more generous but bounded so
/// one request can't hold the writer for long.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// One event object or an array of them. Any invalid element refuses the whole body, so
/// a sender never has to guess which part was taken.
pub fn decode(body: &[u8], ids: &mut dyn IdSource, now: &str) -> Result<Vec<Event>, DecodeError> {
    match parse_json(body)? {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(DecodeError::Invalid("the array holds no events".into()));
            }
            if items.len() > MAX_EVENTS_PER_REQUEST {
                return Err(DecodeError::Invalid(format!(
                    "{} events in one request; send at most {MAX_EVENTS_PER_REQUEST}",
                    items.len()
                )));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    Ok(Event::from_value(
                        item,
                        &format!("event[{i}]"),
                        || ids.next_id(),
                        now,
                    )?)
                })
                .collect()
        }
        single => Ok(vec![Event::from_value(
            single,
            "event",
            || ids.next_id(),
            now,
        )?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id-{n}")
        }
    }

    #[test]
    fn single_and_array() {
        let one = decode(
            br#"{"source":"a","detail-type":"b","detail":{}}"#,
            &mut ids(),
            "now",
        )
        .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "id-1");
        let two = decode(
            br#"[{"source":"a","detail-type":"b","detail":{}},{"id":"x","source":"a","detail-type":"b","detail":{}}]"#,
            &mut ids(),
            "now",
        )
        .unwrap();
        assert_eq!(
            two.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["id-1", "x"]
        );
    }

    #[test]
    fn errors_name_the_position() {
        let err = decode(
            br#"[{"source":"a","detail-type":"b","detail":{}},{"source":"a","detail":{}}]"#,
            &mut ids(),
            "now",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "event[1]: required field `detail-type` is missing"
        );
        assert!(matches!(
            decode(b"{", &mut ids(), "now"),
            Err(DecodeError::Json(_))
        ));
        assert!(decode(b"[]", &mut ids(), "now").is_err());
    }
}
