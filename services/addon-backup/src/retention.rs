//! Which backups a retention policy deletes. Applied only after a new backup succeeded, and it
//! never deletes that backup: a policy can never leave the destination without a backup.

use time::{Duration, OffsetDateTime};

/// Keep the newest `keep_last`, and/or none older than `max_age`. A backup is deleted when
/// either rule rejects it; with neither rule, nothing is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub max_age: Option<Duration>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.max_age.is_none()
    }

    pub fn describe(&self) -> String {
        match (self.keep_last, self.max_age) {
            (None, None) => "keep every backup".into(),
            (Some(n), None) => format!("keep the newest {n}"),
            (None, Some(a)) => format!("keep those younger than {} days", a.whole_days()),
            (Some(n), Some(a)) => format!(
                "keep the newest {n}, none older than {} days",
                a.whole_days()
            ),
        }
    }
}

/// A backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub finished_at: OffsetDateTime,
}

/// The ids to delete from `backups`; `just_made` (the backup this run stored) is always kept.
pub fn to_delete(
    backups: &[Entry],
    policy: Policy,
    just_made: &str,
    now: OffsetDateTime,
) -> Vec<String> {
    let mut sorted: Vec<&Entry> = backups.iter().collect();
    // The backup just made first (whatever its clock said), then newest first; ties by id so the
    // order is total.
    sorted.sort_by(|a, b| {
        (b.id == just_made)
            .cmp(&(a.id == just_made))
            .then(b.finished_at.cmp(&a.finished_at))
            .then(b.id.cmp(&a.id))
    });
    sorted
        .iter()
        .enumerate()
        .filter(|(_, e)| e.id != just_made)
        .filter(|(rank, e)| {
            let beyond_count = policy
                .keep_last
                .is_some_and(|n| *rank as u64 >= u64::from(n));
            let too_old = policy.max_age.is_some_and(|age| now - e.finished_at > age);
            beyond_count || too_old
        })
        .map(|(_, e)| e.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn entries(days_ago: &[i64], now: OffsetDateTime) -> Vec<Entry> {
        days_ago
            .iter()
            .map(|d| Entry {
                id: format!("b{d}"),
                finished_at: now - Duration::days(*d),
            })
            .collect()
    }

    const NOW: OffsetDateTime = datetime!(2026-11-22 06:00:00 UTC);

    #[test]
    fn keep_last_keeps_exactly_the_newest_n() {
        let b = entries(&[0, 1, 2, 3, 4, 5], NOW);
        let p = Policy {
            keep_last: Some(3),
            max_age: None,
        };
        assert_eq!(to_delete(&b, p, "b0", NOW), ["b3", "b4", "b5"]);
        let p = Policy {
            keep_last: Some(6),
            max_age: None,
        };
        assert!(to_delete(&b, p, "b0", NOW).is_empty());
    }

    #[test]
    fn max_age_deletes_only_what_is_older() {
        let b = entries(&[0, 1, 7, 8, 30], NOW);
        let p = Policy {
            keep_last: None,
            max_age: Some(Duration::days(7)),
        };
        // Exactly seven days old is kept; older is deleted.
        assert_eq!(to_delete(&b, p, "b0", NOW), ["b8", "b30"]);
    }

    #[test]
    fn both_rules_delete_what_either_rejects() {
        let b = entries(&[0, 1, 2, 10, 11], NOW);
        let p = Policy {
            keep_last: Some(4),
            max_age: Some(Duration::days(5)),
        };
        assert_eq!(to_delete(&b, p, "b0", NOW), ["b10", "b11"]);
        let p = Policy {
            keep_last: Some(2),
            max_age: Some(Duration::days(30)),
        };
        assert_eq!(to_delete(&b, p, "b0", NOW), ["b2", "b10", "b11"]);
    }

    #[test]
    fn the_new_backup_survives_any_policy() {
        // Its clock was behind: it looks oldest and "too old", yet it is kept and counts as the
        // newest.
        let mut b = entries(&[1, 2], NOW);
        b.push(Entry {
            id: "new".into(),
            finished_at: NOW - Duration::days(400),
        });
        let p = Policy {
            keep_last: Some(1),
            max_age: Some(Duration::days(30)),
        };
        assert_eq!(to_delete(&b, p, "new", NOW), ["b1", "b2"]);
        let p = Policy {
            keep_last: Some(2),
            max_age: None,
        };
        assert_eq!(to_delete(&b, p, "new", NOW), ["b2"]);
    }

    #[test]
    fn no_policy_deletes_nothing() {
        let b = entries(&[0, 100, 1000], NOW);
        assert!(to_delete(&b, Policy::default(), "b0", NOW).is_empty());
    }
}
