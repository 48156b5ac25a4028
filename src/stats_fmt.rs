//! Compact formatting of the counter structs: `Debug` lists only the fields that are not zero.

/// Implements `Debug` for a struct of `u64` counters, printing only the non-zero fields
/// (`GatewayStats { requests: 3, opened: 5, .. }`). The field list is checked by the compiler:
/// the struct is destructured without `..`, so a field added to the struct and not to the list
/// does not compile.
macro_rules! compact_debug {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let $ty { $($field),* } = *self;
                let mut out = f.debug_struct(stringify!($ty));
                $(
                    if $field != 0 {
                        out.field(stringify!($field), &$field);
                    }
                )*
                out.finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use compact_debug;

/// The saturating sum of some counters, for summaries.
pub(crate) fn sum(counters: &[u64]) -> u64 {
    counters.iter().fold(0, |total, c| total.saturating_add(*c))
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use crate::gateway::{GatewayStats, RequestStats};
    use crate::runner::RunnerStats;

    #[test]
    fn debug_lists_only_non_zero_fields() {
        assert_eq!(
            format!("{:?}", GatewayStats::default()),
            "GatewayStats { .. }"
        );
        let g = GatewayStats {
            requests: 3,
            dropped_unsupported: 1,
            ..GatewayStats::default()
        };
        assert_eq!(
            format!("{g:?}"),
            "GatewayStats { requests: 3, dropped_unsupported: 1, .. }"
        );
        let r = RunnerStats {
            delivered: 7,
            ..RunnerStats::default()
        };
        assert_eq!(format!("{r:?}"), "RunnerStats { delivered: 7, .. }");
        let q = RequestStats {
            messages_acked: 2,
            ..RequestStats::default()
        };
        assert_eq!(format!("{q:?}"), "RequestStats { messages_acked: 2, .. }");
    }

    #[test]
    fn display_is_one_line() {
        let g = GatewayStats {
            requests: 3,
            hibernating: 1,
            messages_sent: 10,
            messages_replayed: 2,
            messages_retransmitted: 1,
            dropped_wrong_route: 2,
            dropped_malformed: u64::MAX,
            ..GatewayStats::default()
        };
        assert_eq!(
            format!("{g}"),
            "3 requests (1 hibernating), 0 pending (0 B); 10 sent, 3 replayed, 0 acked; 0 closed; \
             18446744073709551615 inputs dropped, 0 acks ignored"
        );
        let r = RunnerStats {
            sockets: 2,
            persists_requested: 5,
            persists_completed: 4,
            gap_closes: 1,
            closed_app: 1,
            ..RunnerStats::default()
        };
        assert_eq!(
            format!("{r}"),
            "0 actors, 2 sockets; 0 delivered, 0 duplicates, 0 gaps; 4 of 5 persists (0 failed), \
             0 acks; 2 closed; 0 inputs dropped"
        );
    }
}
