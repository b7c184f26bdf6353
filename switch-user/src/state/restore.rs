//! Restoring the saved configuration at start: every saved item is
//! replayed as the request that made it, on behalf of its owner; what
//! cannot be restored (an interface that is gone) is logged and stays in
//! the state file, so it comes back at a later start.

use switch_port::protocol::{Request, Response};

use super::snapshot::{Replay, SavedOwner, SavedState};

/// What a restore did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Items restored, e.g. `port vale0:p1`.
    pub restored: Vec<String>,
    /// Items not restored, with why.
    pub failed: Vec<(String, String)>,
}

/// Replays `state` through `execute` (which carries out a request on
/// behalf of an owner and answers like the control socket), logging each
/// outcome.
pub fn restore(
    state: &SavedState,
    mut execute: impl FnMut(&Request, &SavedOwner) -> Response,
) -> RestoreReport {
    let mut report = RestoreReport::default();
    for Replay {
        what,
        request,
        owner,
    } in state.replays()
    {
        match execute(&request, &owner) {
            Response::Error { message, .. } => {
                log::warn!("could not restore {what}: {message} (it stays in the state file)");
                report.failed.push((what, message));
            }
            _ => {
                log::info!("restored {what} (owner uid {})", owner.uid);
                report.restored.push(what);
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use switch_port::protocol::ErrorCode;

    use super::*;

    #[test]
    fn failures_are_reported_and_the_rest_restored() {
        let state = super::super::snapshot::tests::sample();
        let mut seen = Vec::new();
        let report = restore(&state, |request, owner| {
            seen.push(owner.uid);
            match request {
                Request::Attach { .. } => Response::Error {
                    code: ErrorCode::BadInterface,
                    message: "no network interface eth0".into(),
                },
                _ => Response::Done,
            }
        });
        assert_eq!(seen, [1000, 0]);
        assert_eq!(report.restored, ["port vale0:p1"]);
        assert_eq!(
            report.failed,
            [(
                "attachment of eth0 to vale0".to_owned(),
                "no network interface eth0".to_owned()
            )]
        );
    }
}
