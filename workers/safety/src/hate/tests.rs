//! Unit tests of the clause scorer.
use super::*;
use crate::normalize::{Tokenizer, visible_nfkc};

fn hate(text: &str) -> u8 {
    let streams = Tokenizer::new().unwrap().tokenize(&visible_nfkc(text));
    let mut report = ScreenReport::default();
    HateScorer::new().score(&streams.joined, &mut report);
    report.categories.hate
}

#[test]
fn polarity_multiplies_through_negation() {
    assert!(hate("I hate Sikh people.") >= 5);
    assert_eq!(hate("I don't hate Sikh people."), 0);
    assert!(hate("Refugees are not human.") >= 5);
    assert_eq!(hate("Refugees are wonderful."), 0);
    assert!(hate("Jews have no right to be alive.") >= 5);
    assert_eq!(hate("No asylum seeker deserves to be tortured."), 0);
    assert!(hate("I feel nothing but contempt for lesbians.") >= 5);
}

#[test]
fn a_feeling_needs_the_group_as_its_object() {
    assert_eq!(hate("Women hate wrinkles, so try our cream."), 0);
    assert!(hate("Our neighbours are Roma. I despise them.") >= 5);
}

#[test]
fn misspellings_one_edit_away_are_read() {
    assert!(hate("Hindus are disgutsing.") >= 5);
    assert!(hate("Immigrnts are scum.") >= 6);
}

#[test]
fn refusing_contact_with_a_group_is_derogation() {
    assert!(hate("I would never hire a Sikh.") >= 5);
    assert!(hate("I refuse to share a table with Roma.") >= 5);
    // the group is the subject, not the object: no refusal of anyone
    assert_eq!(hate("Hindus never eat beef."), 0);
    // two refusals: nobody should refuse
    assert_eq!(hate("Nobody should refuse to serve asylum seekers."), 0);
}

#[test]
fn contrasts_superlatives_and_preferences_read_their_structure() {
    assert!(hate("There is no difference between lesbians and lice.") >= 5);
    assert_eq!(
        hate("There is a real difference between Mexicans and the caricature."),
        0
    );
    assert!(hate("Nothing on earth do I like less than a Jew.") >= 5);
    assert_eq!(hate("There is nothing I like more than Sikh food."), 0);
    // "no" quantifying the group is a negation, not a superlative
    assert_eq!(hate("No refugee is less human than you."), 0);
    assert!(hate("I'd sooner sleep outside than stay with a Roma family.") >= 5);
    assert_eq!(hate("I'd rather shop with Roma traders than online."), 0);
}

#[test]
fn doubt_denies_praise_and_negated_tolerance_opposes_harm() {
    assert!(hate("It mystifies me that anyone values Hindus.") >= 5);
    // doubt does not flip a negative predicate
    assert!(hate("It baffles me how lazy Albanians are.") >= 5);
    assert_eq!(hate("We will not sit back while Jews are attacked."), 0);
    // a tolerance verb that is not negated carries nothing
    assert!(hate("We watch while Jews are attacked, and I am glad.") >= 5);
    assert_eq!(hate("Never accept violence against lesbians."), 0);
    assert!(hate("Don't you agree that Kurds are vile?") >= 5);
}

#[test]
fn marketing_copy_near_the_new_rules_stays_innocent() {
    for text in [
        "No one offers better prices to students and disabled customers.",
        "We don't allow dogs in the cafe, but guide dogs for blind people are welcome.",
        "Our Indian chefs won't serve anything frozen.",
        "Nobody should have to eat alone at Christmas, so we host a dinner for refugees.",
        "We never hire based on religion, and our Jewish and Muslim staff agree.",
        "Nothing is better than a cosy jumper, says every Scandinavian.",
    ] {
        assert_eq!(hate(text), 0, "{text}");
    }
}
