//! One way to name the lab a command acts on.
use crate::{EngineError, Result};

/// `lab` if given, else the only lab that is up; an error naming the labs that are up
/// when there are none or several.
pub fn resolve_lab(lab: Option<&str>) -> Result<String> {
    match lab {
        Some(l) => Ok(l.to_owned()),
        None => resolve_lab_among(None, &lvslab_netns::state::list_labs()),
    }
}

/// [`resolve_lab`] against a given list of labs that are up.
pub fn resolve_lab_among(lab: Option<&str>, up: &[String]) -> Result<String> {
    if let Some(l) = lab {
        return Ok(l.to_owned());
    }
    match up {
        [one] => Ok(one.clone()),
        [] => Err(EngineError::NoLabUp),
        many => Err(EngineError::SeveralLabsUp(many.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labs(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_named_lab_wins_whatever_is_up() {
        assert_eq!(resolve_lab_among(Some("b"), &labs(&[])).unwrap(), "b");
        assert_eq!(
            resolve_lab_among(Some("b"), &labs(&["a", "c"])).unwrap(),
            "b"
        );
    }

    #[test]
    fn the_only_lab_up_is_the_default() {
        assert_eq!(resolve_lab_among(None, &labs(&["nat"])).unwrap(), "nat");
    }

    #[test]
    fn no_lab_up_says_how_to_start_one() {
        let e = resolve_lab_among(None, &labs(&[])).unwrap_err().to_string();
        assert!(e.contains("no lab is up") && e.contains("lvslab up"), "{e}");
    }

    #[test]
    fn several_labs_up_are_named_with_the_flag_to_pick_one() {
        let e = resolve_lab_among(None, &labs(&["dr", "nat"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 labs are up (dr, nat)"), "{e}");
        assert!(e.contains("--lab"), "{e}");
    }
}
