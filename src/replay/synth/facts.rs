//! Planted facts: the sentence that states one, its question and answer, and three distractors
//! that share its hook without stating it (the owner on the same subject, a mention of the hook, and
//! a near miss: the same kind of fact about a third person).

use std::collections::HashSet;

use super::rng::Rng;
use super::words::{
    ANIMALS, APPOINTMENTS, CITIES, CODE_ADJ, CODE_NOUN, FAVOURITES, ITEMS, MEN, MONTHS, PASSWORD_WORDS, PET_NAMES, PLACES, RELATIONS_ANY, RELATIONS_F,
    RELATIONS_M, WOMEN,
};

/// One planted fact: the sentence that states it, the question and answer, and distractor
/// sentences that share its hook without stating it.
#[derive(Debug, Clone)]
pub(super) struct Fact {
    pub(super) key: String,
    /// The word a distractor shares with the question (a person, place, project, animal…).
    pub(super) hook: String,
    pub(super) plant: String,
    pub(super) question: String,
    pub(super) answer: String,
    /// Three sentences without the answer: the owner on the same subject (said by the owner, it
    /// shares nearly every word of the question), a mention of the hook by anyone, and a near miss —
    /// the same kind of fact about a third person ("Joel's sister moved to Porto").
    pub(super) distractors: Vec<String>,
    /// Keys the near miss takes (a project it names), so that no real fact contradicts it.
    pub(super) near_keys: Vec<String>,
}

/// A relation and a person that fits it (a sister has a woman's name), never a speaker: the name
/// lists of speakers and third persons do not overlap.
fn relative(rng: &mut Rng) -> (&'static str, String) {
    let (relation, names) = match rng.below(3) {
        0 => (rng.pick(RELATIONS_F), WOMEN),
        1 => (rng.pick(RELATIONS_M), MEN),
        _ => (rng.pick(RELATIONS_ANY), if rng.chance(0.5) { WOMEN } else { MEN }),
    };
    (relation, rng.pick(names).to_string())
}

fn day_month(rng: &mut Rng) -> String {
    format!("{} {}", rng.range(1, 28), rng.pick(MONTHS))
}

/// A fact owned by `owner` whose keys were not used yet (`None` after a few collisions).
pub(super) fn make_fact(rng: &mut Rng, owner: &str, used: &mut HashSet<String>) -> Option<Fact> {
    for _ in 0..8 {
        let f = fact_candidate(rng, owner);
        if !used.contains(&f.key) && f.near_keys.iter().all(|k| !used.contains(k)) {
            used.insert(f.key.clone());
            used.extend(f.near_keys.iter().cloned());
            return Some(f);
        }
    }
    None
}

/// A third person (never a speaker).
fn anyone(rng: &mut Rng) -> &'static str {
    let names = if rng.chance(0.5) { WOMEN } else { MEN };
    rng.pick(names)
}

/// A third person other than `not`, for near misses.
fn someone_else(rng: &mut Rng, not: &str) -> String {
    loop {
        let n = anyone(rng);
        if n != not {
            return n.to_string();
        }
    }
}

/// One candidate fact of a random kind, owned by `owner`.
fn fact_candidate(rng: &mut Rng, owner: &str) -> Fact {
    match rng.below(8) {
        0 => moved(rng, owner),
        1 => code(rng, owner),
        2 => pet(rng, owner),
        3 => project(rng, owner),
        4 => favourite(rng, owner),
        5 => birthday(rng, owner),
        6 => lent(rng, owner),
        _ => appointment(rng, owner),
    }
}

/// A relative moved to a city.
fn moved(rng: &mut Rng, owner: &str) -> Fact {
    let (relation, person) = relative(rng);
    let city = rng.pick(CITIES);
    let mut city2 = rng.pick(CITIES);
    while city2 == city {
        city2 = rng.pick(CITIES);
    }
    let when = format!("{} {}", rng.pick(MONTHS), rng.range(2014, 2021));
    let when2 = format!("{} {}", rng.pick(MONTHS), rng.range(2014, 2021));
    let p2 = someone_else(rng, &person);
    let tail = rng.pick(&[" I still can't quite believe it.", " Apparently the rent is half what it was.", "", " I miss having them close by."]);
    Fact {
        key: format!("moved:{owner}:{person}"),
        hook: person.clone(),
        plant: format!("My {relation} {person} moved to {city} in {when}.{tail}"),
        question: format!("Which city did {owner}'s {relation} {person} move to?"),
        answer: city.to_string(),
        distractors: vec![
            format!("My {relation} {person} called last night, we talked about everything and nothing."),
            format!("{person} sent me photos from a weekend in {city2}, it looked gorgeous."),
            format!("{p2}'s {relation} moved to {city2} in {when2}, so now {p2} wants to go too."),
        ],
        near_keys: Vec::new(),
    }
}

/// A code or password at a place.
fn code(rng: &mut Rng, owner: &str) -> Fact {
    let place = rng.pick(PLACES);
    let kind = rng.below(4);
    let code = |rng: &mut Rng| match kind {
        0 => ("wifi password", format!("{}-{:04}", rng.pick(PASSWORD_WORDS), rng.below(10_000))),
        1 => ("gate code", format!("{:04}", rng.below(10_000))),
        2 => ("alarm code", format!("{:06}", rng.below(1_000_000))),
        _ => ("locker combination", format!("{:02}-{:02}-{:02}", rng.below(40), rng.below(40), rng.below(40))),
    };
    let (kind, value) = code(rng);
    let (_, value2) = code(rng);
    let p2 = anyone(rng);
    Fact {
        key: format!("code:{owner}:{kind}:{place}"),
        hook: place.to_string(),
        plant: format!("Before I forget: the {kind} at my {place} is {value}, in case you ever need it."),
        question: format!("What is the {kind} at {owner}'s {place}?"),
        answer: value,
        distractors: vec![
            format!("I need to change the {kind} at my {place} one of these days."),
            format!("I always forget the {kind} at the {place}, I should write it down somewhere."),
            format!("The {kind} at {p2}'s {place} is {value2}, which {p2} told the whole street."),
        ],
        near_keys: Vec::new(),
    }
}

/// A pet's name.
fn pet(rng: &mut Rng, owner: &str) -> Fact {
    let animal = rng.pick(ANIMALS);
    let name = rng.pick(PET_NAMES);
    let adj = rng.pick(&["rescue", "tiny", "three-legged", "very fluffy", "grumpy old", "shy little"]);
    let pron = rng.pick(&["her", "him"]);
    let mut name2 = rng.pick(PET_NAMES);
    while name2 == name {
        name2 = rng.pick(PET_NAMES);
    }
    let p2 = anyone(rng);
    Fact {
        key: format!("pet:{owner}:{animal}"),
        hook: animal.to_string(),
        plant: format!("Big news, we adopted a {adj} {animal}! We named {pron} {name}."),
        question: format!("What is the name of {owner}'s {animal}?"),
        answer: name.to_string(),
        distractors: vec![
            format!("My {animal} chewed through another phone charger today."),
            format!("There was a {animal} at the park today that would not stop following me around."),
            format!("{p2} adopted a {animal} last spring and named it {name2}."),
        ],
        near_keys: Vec::new(),
    }
}

/// A work project's due date (its sibling project is the near miss).
fn project(rng: &mut Rng, owner: &str) -> Fact {
    let adj = rng.pick(CODE_ADJ);
    let noun = rng.pick(CODE_NOUN);
    let codename = format!("{adj} {noun}");
    let mut noun2 = rng.pick(CODE_NOUN);
    while noun2 == noun {
        noun2 = rng.pick(CODE_NOUN);
    }
    let sibling = format!("{adj} {noun2}");
    let due = day_month(rng);
    let due2 = day_month(rng);
    Fact {
        key: format!("project:{codename}"),
        hook: codename.clone(),
        plant: format!("Work is intense right now, the {codename} project is due on {due}."),
        question: format!("When is {owner}'s {codename} project due?"),
        answer: due,
        distractors: vec![
            format!("The {codename} project is eating all my evenings, I'm so behind."),
            format!("We had another endless meeting about the {codename} project today."),
            format!("The {sibling} project is due on {due2}, thank goodness that one is not mine."),
        ],
        near_keys: vec![format!("project:{sibling}")],
    }
}

/// A favourite thing.
fn favourite(rng: &mut Rng, owner: &str) -> Fact {
    let (thing, values) = FAVOURITES[rng.below(FAVOURITES.len())];
    let value = rng.pick(values);
    let mut other = rng.pick(values);
    while other == value {
        other = rng.pick(values);
    }
    let p2 = anyone(rng);
    Fact {
        key: format!("fav:{owner}:{thing}"),
        hook: thing.to_string(),
        plant: format!("Honestly, my favourite {thing} is {value}. I never get tired of it."),
        question: format!("What is {owner}'s favourite {thing}?"),
        answer: value.to_string(),
        distractors: vec![
            format!("I was going to tell you about my favourite {thing}, remind me later."),
            format!("I'm looking for a new {thing}, any recommendations?"),
            format!("{p2}'s favourite {thing} is {other}, we argue about it constantly."),
        ],
        near_keys: Vec::new(),
    }
}

/// A relative's birthday.
fn birthday(rng: &mut Rng, owner: &str) -> Fact {
    let (relation, person) = relative(rng);
    let date = day_month(rng);
    let date2 = day_month(rng);
    let p2 = someone_else(rng, &person);
    Fact {
        key: format!("birthday:{owner}:{person}"),
        hook: person.clone(),
        plant: format!("I need to plan something nice, my {relation} {person}'s birthday is on {date}."),
        question: format!("When is the birthday of {owner}'s {relation} {person}?"),
        answer: date,
        distractors: vec![
            format!("I still have no idea what to get my {relation} {person} for their birthday."),
            format!("{person} and I finally went for that coffee, we talked for two hours."),
            format!("{p2}'s {relation} has a birthday on {date2}, there's a party at the lake."),
        ],
        near_keys: Vec::new(),
    }
}

/// Who borrowed an item.
fn lent(rng: &mut Rng, owner: &str) -> Fact {
    let item = rng.pick(ITEMS);
    let names = if rng.chance(0.5) { WOMEN } else { MEN };
    let person = rng.pick(names).to_string();
    let p2 = someone_else(rng, &person);
    let p3 = someone_else(rng, &p2);
    Fact {
        key: format!("lent:{owner}:{item}"),
        hook: item.to_string(),
        plant: format!("I lent my {item} to {person} a while ago and haven't seen it since."),
        question: format!("Who did {owner} lend their {item} to?"),
        answer: person,
        distractors: vec![
            format!("I could really use my {item} this weekend, of course."),
            format!("I really need my {item} this weekend, of course."),
            format!("{p2} lent their {item} to {p3} and is still waiting for it."),
        ],
        near_keys: Vec::new(),
    }
}

/// When an appointment is.
fn appointment(rng: &mut Rng, owner: &str) -> Fact {
    let kind = rng.pick(APPOINTMENTS);
    let (hour, half) = if rng.chance(0.5) { (rng.range(8, 11), "am") } else { (rng.range(1, 5), "pm") };
    let when = format!("{} at {hour}:{} {half}", day_month(rng), rng.pick(&["00", "15", "30", "45"]));
    let when2 = format!("{} at {}:{} am", day_month(rng), rng.range(8, 11), rng.pick(&["00", "15", "30", "45"]));
    let p2 = anyone(rng);
    Fact {
        key: format!("appointment:{owner}:{kind}"),
        hook: kind.to_string(),
        plant: format!("Ugh, my {kind} appointment is on {when}, right in the middle of the week."),
        question: format!("When is {owner}'s {kind} appointment?"),
        answer: when,
        distractors: vec![
            format!("I might have to move my {kind} appointment again, work is chaos."),
            format!("I really should book a {kind} appointment at some point."),
            format!("{p2} has a {kind} appointment on {when2}, so we're sharing a taxi."),
        ],
        near_keys: Vec::new(),
    }
}
