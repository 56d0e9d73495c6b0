//! Seeded generators of long sessions with planted facts, and writers that save any transcript in
//! a format a loader reads back — the project's own test, bench and sample data.
//!
//! - [`conversation`]: a two-person chat in dated sessions of 20–40 turns, small talk from templates
//!   and word lists, with facts planted at random turns ("My sister Ana moved to Lisbon in March
//!   2021", "the wifi password at my cabin is tulip-4821") and one QA item per fact (category
//!   `planted`, evidence = the planting turn). Distractor turns share the question's words without
//!   the answer: the owner on the same subject ("I need to change the wifi password at my cabin"),
//!   mentions of the hook, and near misses stating the same kind of fact about someone else ("Joel's
//!   sister moved to Porto"), so retrieval has to rank, not just match a word.
//! - [`agent_session`]: a coding agent fixing failing tests in a generated Rust crate: System and
//!   Task pins, `bash` / `read_file` / `edit_file` / `grep` calls each followed by its result (file
//!   listings, whole source files, test logs of thousands of tokens), and occasional user messages.
//!   Identifiers and paths seen early are referred to again much later.
//! - [`to_locomo_json`] and [`to_openai_json`] write a transcript so the LoCoMo and OpenAI-chat
//!   loaders read it back.
//!
//! Everything is a pure function of `(seed, turns)`: the generator carries its own SplitMix64, so
//! the same call gives the same transcript on every platform and release.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::pins::PinLayer;
use crate::replay::transcript::{QaItem, Transcript};
use crate::turn::{Block, Role, Turn};

// ---------------------------------------------------------------------------------------------
// Randomness and dates
// ---------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, seedable, good enough for test data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n == 0`); the modulo bias is irrelevant at these sizes.
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    /// One element of a non-empty word list.
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs.get(self.below(xs.len())).copied().unwrap_or_default()
    }
}

/// (year, month 1–12, day 1–31) of `days` since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, usize, usize) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as usize, d as usize)
}

/// A LoCoMo-style session date: `1:56 pm on 8 May, 2023`.
fn locomo_date(days: i64, minute_of_day: usize) -> String {
    let (y, m, d) = civil_from_days(days);
    let (h24, min) = (minute_of_day / 60, minute_of_day % 60);
    let (h12, half) = match h24 {
        0 => (12, "am"),
        1..=11 => (h24, "am"),
        12 => (12, "pm"),
        _ => (h24 - 12, "pm"),
    };
    format!("{h12}:{min:02} {half} on {d} {}, {y}", MONTHS[m - 1])
}

// ---------------------------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------------------------

/// One planted fact: the sentence that states it, the question and answer, and distractor
/// sentences that share its hook without stating it.
#[derive(Debug, Clone)]
struct Fact {
    key: String,
    /// The word a distractor shares with the question (a person, place, project, animal…).
    hook: String,
    plant: String,
    question: String,
    answer: String,
    /// Three sentences without the answer: the owner on the same subject (said by the owner, it
    /// shares nearly every word of the question), a mention of the hook by anyone, and a near miss —
    /// the same kind of fact about a third person ("Joel's sister moved to Porto").
    distractors: Vec<String>,
    /// Keys the near miss takes (a project it names), so that no real fact contradicts it.
    near_keys: Vec<String>,
}

/// A generated conversation with, per QA item, its fact's hook (for the tests).
struct GeneratedConversation {
    transcript: Transcript,
    #[cfg_attr(not(test), allow(dead_code))]
    hooks: Vec<String>,
}

/// A two-speaker chat of exactly `turns` turns with planted facts and one QA item per fact.
///
/// Speakers have names (the first is the `user` role, the second the `assistant`), sessions last
/// 20–40 turns and carry their date as every turn's timestamp (`1:56 pm on 8 May, 2023`), and
/// turns carry LoCoMo-style source ids (`D<session>:<turn>`). About one turn in twelve (in the
/// first 90% of the conversation) plants a fact; each fact gets three distractor turns elsewhere:
/// its owner on the same subject without the answer, a mention of its hook, and a near miss (the
/// same kind of fact about a third person).
/// QA items have category `planted`, count in the headline metrics, and name the planting turn as
/// evidence. The same `(seed, turns)` always gives the same transcript.
pub fn conversation(seed: u64, turns: usize) -> Transcript {
    generate_conversation(seed, turns).transcript
}

fn generate_conversation(seed: u64, turns: usize) -> GeneratedConversation {
    let mut rng = Rng::new(seed ^ 0xC0_4E_75_A7);
    let a = rng.pick(FIRST_NAMES).to_string();
    let mut b = rng.pick(FIRST_NAMES).to_string();
    while b == a {
        b = rng.pick(FIRST_NAMES).to_string();
    }
    let names = [a.clone(), b.clone()];

    // Layout: sessions, dates, who speaks each turn.
    let mut speaker = Vec::with_capacity(turns);
    let mut session_of = Vec::with_capacity(turns);
    let mut dates = Vec::new();
    let mut day = 18_993 + rng.below(730) as i64; // 2022-01-01 + up to two years
    while speaker.len() < turns {
        let len = rng.range(20, 40).min(turns - speaker.len());
        dates.push(locomo_date(day, rng.range(8 * 60, 22 * 60)));
        let first = rng.below(2);
        for k in 0..len {
            // Mostly alternating; now and then someone sends two messages in a row.
            let who = if k > 0 && rng.chance(0.08) { speaker[speaker.len() - 1] } else { (first + k) % 2 };
            speaker.push(who);
            session_of.push(dates.len() - 1);
        }
        day += rng.range(1, 21) as i64;
    }

    // Facts: planted at random turns in the first 90%, owned by whoever speaks there.
    let limit = turns * 9 / 10;
    let mut used = HashSet::new();
    let mut planted: Vec<(usize, Fact)> = Vec::new();
    for (i, &who) in speaker.iter().enumerate().take(limit) {
        if !rng.chance(1.0 / 12.0) {
            continue;
        }
        if let Some(f) = make_fact(&mut rng, &names[who], &mut used) {
            planted.push((i, f));
        }
    }
    let mut slot: Vec<Option<String>> = vec![None; turns];
    for (i, f) in &planted {
        slot[*i] = Some(f.plant.clone());
    }
    // Three distractors per fact, anywhere before or after the plant, on free turns; the first on
    // a turn of the fact's owner.
    for (i, f) in &planted {
        for (k, d) in f.distractors.iter().enumerate() {
            for _ in 0..16 {
                let j = rng.below(turns);
                if slot[j].is_none() && (k > 0 || speaker[j] == speaker[*i]) {
                    slot[j] = Some(d.clone());
                    break;
                }
            }
        }
    }

    let mut t = Transcript::new(format!("synth-conversation-{seed}"), Path::new("<synth>"), "synth-conversation");
    let mut prev_question = false;
    let mut k_in_session = 0;
    for i in 0..turns {
        if i > 0 && session_of[i] != session_of[i - 1] {
            k_in_session = 0;
            prev_question = false;
        }
        k_in_session += 1;
        let who = speaker[i];
        let other = &names[1 - who];
        let first_of_session = k_in_session == 1;
        let text = match slot[i].take() {
            Some(s) => match opener(&mut rng, other, first_of_session, prev_question) {
                Some(o) => format!("{o} {s}"),
                None => s,
            },
            None => filler(&mut rng, other, first_of_session, prev_question),
        };
        prev_question = text.ends_with('?');
        let role = if who == 0 { Role::User } else { Role::Assistant };
        let s = session_of[i];
        t.turns.push(
            Turn::new(role, vec![Block::text(text)])
                .with_speaker(names[who].as_str())
                .with_timestamp(dates[s].as_str())
                .with_source_id(format!("D{}:{k_in_session}", s + 1)),
        );
    }

    let mut hooks = Vec::with_capacity(planted.len());
    for (i, f) in planted {
        hooks.push(f.hook);
        t.qa.push(QaItem {
            question: f.question,
            answer: Some(f.answer),
            evidence: vec![vec![i]],
            category: "planted".to_string(),
            headline: true,
        });
    }
    GeneratedConversation { transcript: t, hooks }
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
fn make_fact(rng: &mut Rng, owner: &str, used: &mut HashSet<String>) -> Option<Fact> {
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

fn fact_candidate(rng: &mut Rng, owner: &str) -> Fact {
    match rng.below(8) {
        0 => {
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
        1 => {
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
        2 => {
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
        3 => {
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
        4 => {
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
        5 => {
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
        6 => {
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
        _ => {
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
    }
}

fn reaction(rng: &mut Rng, other: &str) -> String {
    match rng.below(8) {
        0 => format!("Haha, good one, {other}."),
        1 => format!("Wow, good for you, {other}!"),
        _ => rng.pick(REACTIONS).to_string(),
    }
}

/// How a turn opens: a greeting (first turn of a session), an answer (after a question), or now
/// and then a reaction.
fn opener(rng: &mut Rng, other: &str, first_of_session: bool, after_question: bool) -> Option<String> {
    if first_of_session {
        Some(match rng.below(4) {
            0 => format!("Hey {other}! Long time no chat."),
            1 => format!("Hi {other}, how are things?"),
            2 => format!("Morning, {other}!"),
            _ => "Hey! I was just thinking about you.".to_string(),
        })
    } else if after_question {
        Some(rng.pick(ANSWER_OPENERS).to_string())
    } else if rng.chance(0.5) {
        Some(reaction(rng, other))
    } else {
        None
    }
}

/// Small talk: an opener, one or two statements (of different kinds), maybe a question.
fn filler(rng: &mut Rng, other: &str, first_of_session: bool, after_question: bool) -> String {
    let mut parts: Vec<String> = opener(rng, other, first_of_session, after_question).into_iter().collect();
    let first = rng.below(STATEMENT_KINDS);
    parts.push(statement(rng, first));
    if rng.chance(0.5) {
        let second = (first + 1 + rng.below(STATEMENT_KINDS - 1)) % STATEMENT_KINDS;
        parts.push(statement(rng, second));
    }
    if rng.chance(0.45) {
        parts.push(question(rng, other));
    }
    parts.join(" ")
}

/// Kinds of small-talk statement.
const STATEMENT_KINDS: usize = 9;

fn statement(rng: &mut Rng, kind: usize) -> String {
    match kind {
        0 => format!("I spent the {} {}.", rng.pick(DAYPARTS), rng.pick(ACTIVITIES)),
        1 => format!("{} here today, so I {}.", rng.pick(WEATHER), rng.pick(WEATHER_DID)),
        2 => format!("Work has been {} this week{}.", rng.pick(&["hectic", "slow", "surprisingly fun", "exhausting", "a bit weird"]), rng.pick(&["", ", lots of meetings", ", but the team is great", ", I need a holiday"])),
        3 => format!("I finally finished {}, and the ending was {}.", rng.pick(SHOWS), rng.pick(OPINIONS)),
        4 => format!("We had {} for dinner and it was {}.", rng.pick(FOODS), rng.pick(OPINIONS)),
        5 => format!("I've been trying to {} lately.", rng.pick(HABITS)),
        6 => format!("I'm thinking about {} next month.", rng.pick(PLANS)),
        7 => format!("The {} I ordered finally arrived, it's {}.", rng.pick(&["lamp", "rug", "kettle", "backpack", "desk chair", "rain jacket"]), rng.pick(OPINIONS)),
        _ => format!("My {} called yesterday, {}.", rng.pick(RELATIONS_ANY), rng.pick(&["we talked for ages", "it was nice to catch up", "there's always some drama", "they're doing well"])),
    }
}

fn question(rng: &mut Rng, other: &str) -> String {
    match rng.below(7) {
        0 => format!("How was your {}?", rng.pick(&["weekend", "week", "day", "trip", "evening"])),
        1 => format!("Have you watched {} yet?", rng.pick(SHOWS)),
        2 => format!("Any plans for the {}?", rng.pick(&["weekend", "holidays", "summer", "long weekend"])),
        3 => "What have you been cooking lately?".to_string(),
        4 => format!("How's work treating you, {other}?"),
        5 => format!("Did you end up {}?", rng.pick(PLANS)),
        _ => format!("Are you still trying to {}?", rng.pick(HABITS).replace("my ", "your ")),
    }
}

// ---------------------------------------------------------------------------------------------
// Agent sessions
// ---------------------------------------------------------------------------------------------

/// One generated source file.
#[derive(Debug, Clone)]
struct Module {
    name: String,
    path: String,
    lines: Vec<String>,
    structs: Vec<String>,
    fns: Vec<String>,
    /// (name, value)
    consts: Vec<(String, u64)>,
    tests: Vec<String>,
}

impl Module {
    fn content(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
    /// 1-based line of the first line containing `needle` (1 when absent).
    fn line_of(&self, needle: &str) -> usize {
        self.lines.iter().position(|l| l.contains(needle)).map_or(1, |i| i + 1)
    }
}

/// A failing test and the constant whose value breaks it.
#[derive(Debug, Clone)]
struct Failure {
    module: usize,
    test: String,
    constant: String,
    expected: u64,
}

struct AgentGen {
    rng: Rng,
    seed: u64,
    krate: String,
    env_var: String,
    modules: Vec<Module>,
    failing: Vec<Failure>,
    /// Identifiers and paths shown so far, in first-seen order.
    seen: Vec<String>,
    seen_set: HashSet<String>,
    calls: usize,
    edits: Vec<(String, String, String)>,
    turns: Vec<Turn>,
}

/// A coding-agent session of exactly `turns` turns: a System and a Task pin, then assistant turns
/// calling `bash`, `read_file`, `edit_file` and `grep` (JSON arguments, unique deterministic call
/// ids `call_<seed>_<n>`), each followed directly by its result, occasional user messages and
/// assistant progress notes.
///
/// The agent works on a generated Rust crate of a dozen modules: whole-file reads return a few
/// hundred lines of code, full test runs return logs of thousands of tokens with failing
/// assertions, `grep` finds identifiers across files, and edits change the files later reads show.
/// Identifiers and paths seen early (the failing test, its constant, an environment variable) are
/// mentioned again much later by the user and the agent, so recalling old turns matters.
/// The turns are normalized ([`crate::normalize`] finds nothing to repair). The same
/// `(seed, turns)` always gives the same transcript.
pub fn agent_session(seed: u64, turns: usize) -> Transcript {
    let mut g = AgentGen::new(seed);
    let mut t = Transcript::new(format!("synth-agent-{seed}"), Path::new("<synth>"), "synth-agent");
    t.pins.push((
        PinLayer::System,
        format!(
            "You are a careful coding agent working in the repository /workspace/{}. Tools: bash (run a shell \
             command), read_file (path, optional start_line/end_line), edit_file (path, old, new: replace one exact \
             occurrence) and grep (pattern, path). Make small, verified changes, run the tests after every edit, and \
             never rewrite a file wholesale.",
            g.krate
        ),
    ));
    let first = g.failing.first().cloned();
    let task = match &first {
        Some(f) => format!(
            "Task: `cargo test` fails on main since the last release: `{}::tests::{}` and {} other test(s). Find the \
             cause and fix it without changing the public API. Deployments set `{}`; it must keep working.",
            g.modules[f.module].name,
            f.test,
            g.failing.len() - 1,
            g.env_var
        ),
        None => format!("Task: make `cargo test` pass in {}.", g.krate),
    };
    t.pins.push((PinLayer::Task, task));
    g.run(turns);
    t.turns = std::mem::take(&mut g.turns);
    t.normalize_turns();
    t
}

impl AgentGen {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed ^ 0xA6E7_5E55);
        let krate = rng.pick(CRATES).to_string();
        let env_var = format!("{}_{}", krate.to_uppercase(), rng.pick(&["CACHE_DIR", "LOG_LEVEL", "DATA_ROOT", "MAX_WORKERS", "LEASE_FILE"]));
        let n_modules = rng.range(10, 14);
        let mut names: Vec<&str> = Vec::new();
        while names.len() < n_modules {
            let m = rng.pick(MODULE_NAMES);
            if !names.contains(&m) {
                names.push(m);
            }
        }
        let mut g = AgentGen {
            rng,
            seed,
            krate,
            env_var,
            modules: Vec::new(),
            failing: Vec::new(),
            seen: Vec::new(),
            seen_set: HashSet::new(),
            calls: 0,
            edits: Vec::new(),
            turns: Vec::new(),
        };
        for name in &names {
            let m = g.make_module(name, &names);
            g.modules.push(m);
        }
        for _ in 0..2 {
            g.add_failure();
        }
        g
    }

    fn camel(s: &str) -> String {
        s.split('_')
            .map(|p| {
                let mut c = p.chars();
                c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
            })
            .collect()
    }

    fn make_module(&mut self, name: &str, all: &[&str]) -> Module {
        let rng = &mut self.rng;
        let base = Self::camel(name);
        let mut structs = vec![base.clone()];
        for suffix in ["Config", "Handle", "State", "Entry"] {
            if rng.chance(0.4) {
                structs.push(format!("{base}{suffix}"));
            }
        }
        let err = format!("{base}Error");
        let mut consts: Vec<(String, u64)> = Vec::new();
        let want_consts = rng.range(2, 4);
        while consts.len() < want_consts {
            let noun = rng.pick(NOUNS).to_uppercase();
            let c = match rng.below(4) {
                0 => format!("MAX_{noun}_SIZE"),
                1 => format!("DEFAULT_{noun}_TIMEOUT_MS"),
                2 => format!("{noun}_TTL_SECS"),
                _ => format!("MIN_{noun}_COUNT"),
            };
            if !consts.iter().any(|(n, _)| *n == c) {
                consts.push((c, rng.range(100, 65_535) as u64));
            }
        }
        let mut fns: Vec<String> = Vec::new();
        let want = rng.range(4, 8);
        while fns.len() < want {
            let f = format!("{}_{}", rng.pick(VERBS), rng.pick(NOUNS));
            if !fns.contains(&f) {
                fns.push(f);
            }
        }
        let fields: Vec<String> = (0..rng.range(3, 6)).map(|k| format!("{}_{}", rng.pick(NOUNS), ["count", "limit", "len", "id", "epoch", "budget"][k % 6])).collect();
        let others: Vec<&str> = all.iter().copied().filter(|o| *o != name).collect();
        let dep = rng.pick(&others).to_string();

        let mut l: Vec<String> = Vec::new();
        l.push(format!("//! The {name} subsystem: {}.", rng.pick(MODULE_DOCS)));
        l.push(String::new());
        l.push("use std::time::Duration;".into());
        l.push(String::new());
        l.push(format!("use crate::{dep}::{};", Self::camel(&dep)));
        l.push(String::new());
        for (c, v) in &consts {
            l.push(format!("/// {}", rng.pick(CONST_DOCS)));
            l.push(format!("pub const {c}: u64 = {v};"));
        }
        l.push(String::new());
        l.push(format!("/// Errors of the {name} subsystem."));
        l.push("#[derive(Debug, Clone, PartialEq, Eq)]".into());
        l.push(format!("pub enum {err} {{"));
        for (v, doc) in ERR_VARIANTS {
            l.push(format!("    /// {doc}"));
            l.push(format!("    {v},"));
        }
        l.push("}".into());
        for s in &structs {
            l.push(String::new());
            l.push(format!("/// {}", rng.pick(STRUCT_DOCS)));
            l.push("#[derive(Debug, Clone, Default)]".into());
            l.push(format!("pub struct {s} {{"));
            for f in &fields {
                l.push(format!("    pub(crate) {f}: u64,"));
            }
            l.push("}".into());
        }
        l.push(String::new());
        l.push(format!("impl {base} {{"));
        for (k, f) in fns.iter().enumerate() {
            if k > 0 {
                l.push(String::new());
            }
            l.push(format!("    /// {}", rng.pick(FN_DOCS)));
            l.push(format!("    pub fn {f}(&mut self, input: &[u8]) -> Result<u64, {err}> {{"));
            if k == 0 && all.first() == Some(&name) {
                l.push(format!("        let root = std::env::var(\"{}\").unwrap_or_else(|_| \"/var/lib/{}\".into());", self.env_var, self.krate));
                l.push(format!("        tracing::info!(target: \"{}::{name}\", %root, \"{f}\");", self.krate));
            }
            for _ in 0..rng.range(3, 9) {
                let field = rng.pick(&fields.iter().map(String::as_str).collect::<Vec<_>>()).to_string();
                let (c, _) = &consts[rng.below(consts.len())];
                let other_fn = &fns[rng.below(fns.len())];
                let line = match rng.below(6) {
                    0 => format!("        let {field} = self.{field}.saturating_sub({c});"),
                    1 => format!("        if self.{field} > {c} {{ return Err({err}::Overflow); }}"),
                    2 => format!("        self.{field} = self.{field}.wrapping_add(input.len() as u64);"),
                    3 => format!("        let _ = self.{other_fn}(&input[..input.len().min({c} as usize)]);"),
                    4 => format!("        tracing::debug!(target: \"{}::{name}\", {field} = self.{field}, \"{f}\");", self.krate),
                    _ => format!("        // TODO({}): revisit once #{} lands", rng.pick(MEN).to_lowercase(), rng.range(1000, 9999)),
                };
                l.push(line);
            }
            let (c, _) = &consts[rng.below(consts.len())];
            l.push(format!("        Ok({c}.min(input.len() as u64))"));
            l.push("    }".into());
        }
        l.push("}".into());
        l.push(String::new());
        l.push("#[cfg(test)]".into());
        l.push("mod tests {".into());
        l.push("    use super::*;".into());
        let mut tests = Vec::new();
        for f in &fns {
            for _ in 0..rng.range(1, 4) {
                let t = format!("{f}_{}", rng.pick(TEST_CASES));
                if tests.contains(&t) {
                    continue;
                }
                let (c, _) = &consts[rng.below(consts.len())];
                l.push(String::new());
                l.push("    #[test]".into());
                l.push(format!("    fn {t}() {{"));
                l.push(format!("        let mut s = {base}::default();"));
                l.push(format!("        let input = vec![0u8; {c} as usize + 1];"));
                l.push(format!("        assert_eq!(s.{f}(&input), Ok({c}));"));
                l.push("    }".into());
                tests.push(t);
            }
        }
        l.push("}".into());
        Module { name: name.to_string(), path: format!("src/{name}.rs"), lines: l, structs, fns, consts, tests }
    }

    /// Makes one more test fail: a constant of its module gets a wrong value.
    fn add_failure(&mut self) -> Option<Failure> {
        for _ in 0..16 {
            let mi = self.rng.below(self.modules.len());
            let m = &self.modules[mi];
            let test = m.tests[self.rng.below(m.tests.len())].clone();
            let (constant, value) = m.consts[self.rng.below(m.consts.len())].clone();
            if self.failing.iter().any(|f| f.test == test || f.constant == constant) {
                continue;
            }
            let f = Failure { module: mi, test, constant, expected: value };
            // Break the constant in the source: the test expects the old value.
            let wrong = value * 2 + 1;
            self.set_const(mi, &f.constant, wrong);
            self.failing.push(f.clone());
            return Some(f);
        }
        None
    }

    fn const_value(&self, mi: usize, name: &str) -> u64 {
        self.modules[mi].consts.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    }

    /// Sets a constant's value; returns the old and new source lines.
    fn set_const(&mut self, mi: usize, name: &str, value: u64) -> (String, String) {
        let m = &mut self.modules[mi];
        let prefix = format!("pub const {name}: u64 = ");
        let new = format!("{prefix}{value};");
        let mut old = String::new();
        if let Some(line) = m.lines.iter_mut().find(|l| l.starts_with(&prefix)) {
            old = std::mem::replace(line, new.clone());
        }
        if let Some(c) = m.consts.iter_mut().find(|(n, _)| n == name) {
            c.1 = value;
        }
        (old, new)
    }

    fn see(&mut self, id: impl Into<String>) {
        let id = id.into();
        if self.seen_set.insert(id.clone()) {
            self.seen.push(id);
        }
    }

    fn see_module(&mut self, mi: usize) {
        let m = self.modules[mi].clone();
        self.see(m.path.clone());
        for s in &m.structs {
            self.see(s.clone());
        }
        for (c, _) in &m.consts {
            self.see(c.clone());
        }
        for f in &m.fns {
            self.see(f.clone());
        }
    }

    /// Something seen before, half the time from the oldest fifth: long-range references.
    fn old_ref(&mut self) -> String {
        if self.seen.is_empty() {
            return self.env_var.clone();
        }
        let n = if self.rng.chance(0.5) { (self.seen.len() / 5).max(1) } else { self.seen.len() };
        self.seen[self.rng.below(n)].clone()
    }

    fn next_call_id(&mut self) -> String {
        self.calls += 1;
        format!("call_{}_{:05}", self.seed, self.calls)
    }

    fn call(&mut self, text: Option<String>, name: &str, args: Value, output: String) {
        let id = self.next_call_id();
        self.turns.push(Turn::tool_call(text, id.clone(), name, args));
        self.turns.push(Turn::tool_result(id, output, false));
    }

    fn run(&mut self, turns: usize) {
        // The opening moves every agent makes: look around, run the tests, read the failing module.
        let mut script: Vec<u8> = vec![b'u', b'l', b'c', b't', b'r'];
        script.reverse();
        let mut since_user = 0usize;
        let mut next_user = self.rng.range(15, 40);
        while self.turns.len() < turns {
            let left = turns - self.turns.len();
            let step = match script.pop() {
                Some(s) => s,
                None if since_user >= next_user => b'u',
                None => match self.rng.below(100) {
                    0..=7 => b'n',
                    8..=27 => b'r',
                    28..=37 => b'R',
                    38..=55 => b'g',
                    56..=67 => b'e',
                    68..=79 => b'T',
                    80..=85 => b't',
                    86..=92 => b'k',
                    93..=97 => b'd',
                    _ => b'l',
                },
            };
            if left == 1 || step == b'n' {
                self.note();
                since_user += 1;
                continue;
            }
            if step == b'u' {
                let about = self.user_message();
                since_user = 0;
                next_user = self.rng.range(15, 40);
                // Usually the agent answers before it goes on.
                if let Some(r) = about.filter(|_| self.turns.len() < turns && self.rng.chance(0.6)) {
                    self.reply(&r);
                }
                continue;
            }
            match step {
                b'l' => self.ls(),
                b'c' => self.cargo_toml(),
                b't' => self.test_all(),
                b'T' => self.test_module(),
                b'r' => self.read_file(false),
                b'R' => self.read_file(true),
                b'g' => self.grep(),
                b'e' => self.edit(),
                b'k' => self.clippy(),
                _ => self.diff(),
            }
            since_user += 2;
        }
    }

    /// A user message; returns what it asks about, if anything.
    fn user_message(&mut self) -> Option<String> {
        let (text, about) = if self.turns.is_empty() {
            ("Go ahead. CI is red on main; the run log is long, so start from `cargo test`.".to_string(), None)
        } else {
            match self.rng.below(6) {
                0 => {
                    let r = self.old_ref();
                    (format!("How is it going? Does any of this touch `{r}`?"), Some(r))
                }
                1 => {
                    let r = self.old_ref();
                    (format!("Heads up: `{r}` is also used by the deploy scripts, please don't rename or remove it."), Some(r))
                }
                2 => (format!("Reminder: `{}` must keep working after your change.", self.env_var), Some(self.env_var.clone())),
                3 => match self.add_failure() {
                    Some(f) => {
                        let name = format!("{}::tests::{}", self.modules[f.module].name, f.test);
                        (format!("New failure from the nightly CI: `{name}`. Can you look at it after the current one?"), Some(name))
                    }
                    None => ("Take your time, but please run the whole suite before you stop.".to_string(), None),
                },
                4 => {
                    let m = self.rng.below(self.modules.len());
                    let s = self.modules[m].structs[0].clone();
                    (format!("Please keep the public API of `{s}` in `{}` unchanged.", self.modules[m].path), Some(s))
                }
                _ => {
                    let r = self.old_ref();
                    (format!("What did you find about `{r}` earlier? Summarize before you continue."), Some(r))
                }
            }
        };
        self.turns.push(Turn::user(text));
        about
    }

    /// The agent's answer to a user message about `about`.
    fn reply(&mut self, about: &str) {
        let other = self.old_ref();
        let status = self.status();
        let text = match self.rng.below(3) {
            0 => format!("Understood, I won't touch `{about}`. So far I have looked at `{other}`. {status}"),
            1 => format!("Noted about `{about}`; it is related to what I saw in `{other}`. {status}"),
            _ => format!("`{about}`: I checked it earlier together with `{other}`, nothing to change there. {status}"),
        };
        self.turns.push(Turn::assistant(text));
    }

    fn status(&self) -> String {
        match self.failing.first() {
            Some(f) => format!(
                "Still failing: `{}::tests::{}`, which expects `{}` in `{}` to be {}.",
                self.modules[f.module].name,
                f.test,
                f.constant,
                self.modules[f.module].path,
                f.expected
            ),
            None => "All the tests I know of pass now.".to_string(),
        }
    }

    /// An assistant progress note (no tool call), naming old identifiers.
    fn note(&mut self) {
        let r1 = self.old_ref();
        let r2 = self.old_ref();
        let status = self.status();
        self.turns.push(Turn::assistant(format!("Progress so far: I looked at `{r1}` and `{r2}`. {status}")));
    }

    fn ls(&mut self) {
        let mut out = String::from(".\n./Cargo.toml\n./Cargo.lock\n./README.md\n./benches\n./benches/throughput.rs\n./src\n./src/lib.rs\n");
        let mut paths: Vec<String> = self.modules.iter().map(|m| format!("./{}", m.path)).collect();
        paths.sort();
        for p in paths {
            out.push_str(&p);
            out.push('\n');
        }
        out.push_str("./tests\n./tests/integration.rs\n");
        let text = if self.calls == 0 { Some("Let me look at the layout of the repository first.".to_string()) } else { None };
        self.call(text, "bash", json!({"command": "find . -path ./target -prune -o -print | sort"}), out);
        for i in 0..self.modules.len() {
            let p = self.modules[i].path.clone();
            self.see(p);
        }
    }

    fn cargo_toml(&mut self) {
        let v = format!("0.{}.{}", self.rng.range(1, 9), self.rng.range(0, 12));
        let out = format!(
            "[package]\nname = \"{k}\"\nversion = \"{v}\"\nedition = \"2021\"\n\n[dependencies]\ntracing = \"0.1\"\nserde = {{ version = \"1\", features = [\"derive\"] }}\nbytes = \"1\"\n\n[dev-dependencies]\nproptest = \"1\"\n",
            k = self.krate
        );
        self.call(None, "read_file", json!({"path": "Cargo.toml"}), out);
    }

    fn test_header(&mut self) -> String {
        format!(
            "   Compiling {k} v0.4.2 (/workspace/{k})\n    Finished `test` profile [unoptimized + debuginfo] target(s) in {}.{:02}s\n     Running unittests src/lib.rs (target/debug/deps/{k}-{:016x})\n",
            self.rng.range(3, 40),
            self.rng.below(100),
            self.rng.next_u64(),
            k = self.krate
        )
    }

    fn test_log(&mut self, modules: &[usize]) -> String {
        let mut out = self.test_header();
        let mut names: Vec<(usize, String)> = Vec::new();
        for &mi in modules {
            for t in &self.modules[mi].tests {
                names.push((mi, t.clone()));
            }
        }
        out.push_str(&format!("\nrunning {} tests\n", names.len()));
        let failing: Vec<Failure> = self.failing.iter().filter(|f| modules.contains(&f.module)).cloned().collect();
        for (mi, t) in &names {
            let bad = failing.iter().any(|f| f.module == *mi && f.test == *t);
            out.push_str(&format!("test {}::tests::{t} ... {}\n", self.modules[*mi].name, if bad { "FAILED" } else { "ok" }));
        }
        let backtrace = self.rng.chance(0.3);
        if !failing.is_empty() {
            out.push_str("\nfailures:\n");
            for f in &failing {
                let m = &self.modules[f.module];
                let line = m.line_of(&format!("fn {}()", f.test)) + 3;
                let actual = self.const_value(f.module, &f.constant);
                out.push_str(&format!(
                    "\n---- {n}::tests::{t} stdout ----\n\nthread '{n}::tests::{t}' panicked at {p}:{line}:9:\nassertion `left == right` failed\n  left: Err(Overflow)\n right: Ok({actual})\n",
                    n = m.name,
                    t = f.test,
                    p = m.path
                ));
                if backtrace {
                    out.push_str("stack backtrace:\n");
                    for (k, frame) in BACKTRACE.iter().enumerate() {
                        out.push_str(&format!("  {k:>2}: {frame}\n"));
                    }
                    let fname = m.fns.iter().find(|x| f.test.starts_with(x.as_str())).cloned().unwrap_or_default();
                    out.push_str(&format!(
                        "  {:>2}: {k}::{n}::{s}::{fname}\n             at ./{p}:{l}:13\n  {:>2}: {k}::{n}::tests::{t}\n             at ./{p}:{line}:9\n",
                        BACKTRACE.len(),
                        BACKTRACE.len() + 1,
                        k = self.krate,
                        n = m.name,
                        s = m.structs[0],
                        p = m.path,
                        l = m.line_of(&format!("fn {fname}(")) + 1,
                        t = f.test
                    ));
                } else {
                    out.push_str("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n");
                }
            }
            out.push_str("\n\nfailures:\n");
            for f in &failing {
                out.push_str(&format!("    {}::tests::{}\n", self.modules[f.module].name, f.test));
            }
        }
        let passed = names.len() - failing.len();
        let verdict = if failing.is_empty() { "ok" } else { "FAILED" };
        out.push_str(&format!(
            "\ntest result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out; finished in {}.{:02}s\n",
            failing.len(),
            self.rng.below(3),
            self.rng.below(100)
        ));
        if !failing.is_empty() {
            out.push_str("\nerror: test failed, to rerun pass `--lib`\n[exit status: 101]\n");
        }
        out
    }

    fn test_all(&mut self) {
        let all: Vec<usize> = (0..self.modules.len()).collect();
        let backtrace = if self.rng.chance(0.3) { "RUST_BACKTRACE=1 " } else { "" };
        let out = self.test_log(&all);
        let tests: Vec<String> = self.failing.iter().map(|f| f.test.clone()).collect();
        for t in tests {
            self.see(t);
        }
        self.call(Some("Running the whole test suite.".into()), "bash", json!({"command": format!("{backtrace}cargo test 2>&1")}), out);
    }

    fn test_module(&mut self) {
        let mi = match self.failing.first() {
            Some(f) if self.rng.chance(0.6) => f.module,
            _ => self.rng.below(self.modules.len()),
        };
        let out = self.test_log(&[mi]);
        let name = self.modules[mi].name.clone();
        self.call(None, "bash", json!({"command": format!("cargo test {name}::tests 2>&1")}), out);
    }

    fn read_file(&mut self, range: bool) {
        let mi = match self.failing.first() {
            Some(f) if self.rng.chance(0.4) => f.module,
            _ => self.rng.below(self.modules.len()),
        };
        let m = self.modules[mi].clone();
        if range {
            let start = self.rng.range(1, m.lines.len().saturating_sub(20).max(1));
            let end = (start + self.rng.range(15, 60)).min(m.lines.len());
            let mut out = String::new();
            for (k, l) in m.lines.iter().enumerate().take(end).skip(start - 1) {
                out.push_str(&format!("{:>5}\t{l}\n", k + 1));
            }
            let f = self.old_ref();
            let text = format!("Checking how `{}` handles this; I saw `{f}` earlier.", m.path);
            self.call(Some(text), "read_file", json!({"path": m.path, "start_line": start, "end_line": end}), out);
        } else {
            self.call(None, "read_file", json!({"path": m.path}), m.content());
        }
        self.see_module(mi);
    }

    fn grep(&mut self) {
        let pattern = match self.rng.below(3) {
            0 => {
                let m = &self.modules[self.rng.below(self.modules.len())];
                m.fns[self.rng.below(m.fns.len())].clone()
            }
            _ => self.old_ref(),
        };
        let pattern = pattern.rsplit('/').next().unwrap_or(&pattern).trim_end_matches(".rs").to_string();
        let mut out = String::new();
        let mut hits = 0;
        for m in &self.modules {
            for (k, l) in m.lines.iter().enumerate() {
                if l.contains(&pattern) && hits < 40 {
                    out.push_str(&format!("{}:{}:{l}\n", m.path, k + 1));
                    hits += 1;
                }
            }
        }
        if hits == 0 {
            out.push_str("[no matches]\n");
        }
        self.call(None, "grep", json!({"pattern": pattern, "path": "src"}), out);
    }

    fn edit(&mut self) {
        // Fix the first failure when its module was read; otherwise tighten a guard somewhere.
        let fix = self.failing.first().cloned().filter(|f| self.seen_set.contains(&f.constant));
        match fix {
            Some(f) => {
                let (old, new) = self.set_const(f.module, &f.constant, f.expected);
                let path = self.modules[f.module].path.clone();
                let line = self.modules[f.module].line_of(&new);
                self.failing.retain(|x| x.test != f.test);
                let text = format!(
                    "`{}` expects `{}` to be {}; the release bumped it. Restoring the value in `{path}`.",
                    f.test, f.constant, f.expected
                );
                self.edits.push((path.clone(), old.clone(), new.clone()));
                self.call(Some(text), "edit_file", json!({"path": path, "old": old, "new": new}), format!("Edited {path}: replaced 1 occurrence at line {line}."));
            }
            None => {
                let mi = self.rng.below(self.modules.len());
                let m = &self.modules[mi];
                let candidates: Vec<usize> = m.lines.iter().enumerate().filter(|(_, l)| l.contains("saturating_sub(")).map(|(k, _)| k).collect();
                let Some(&k) = candidates.get(self.rng.below(candidates.len().max(1))) else {
                    let path = m.path.clone();
                    self.call(None, "edit_file", json!({"path": path, "old": "wrapping_add(", "new": "saturating_add("}), format!("Error: `wrapping_add(` occurs more than once in {path}; give more context."));
                    return;
                };
                let old = m.lines[k].clone();
                let new = old.replace("saturating_sub(", "saturating_sub(1 + ");
                let path = m.path.clone();
                self.modules[mi].lines[k] = new.clone();
                self.edits.push((path.clone(), old.clone(), new.clone()));
                self.call(
                    Some("Tightening this bound while I'm here.".into()),
                    "edit_file",
                    json!({"path": path, "old": old.trim(), "new": new.trim()}),
                    format!("Edited {path}: replaced 1 occurrence at line {}.", k + 1),
                );
            }
        }
    }

    fn clippy(&mut self) {
        let mut out = format!("    Checking {k} v0.4.2 (/workspace/{k})\n", k = self.krate);
        let n = self.rng.range(1, 6);
        for _ in 0..n {
            let m = &self.modules[self.rng.below(self.modules.len())];
            let k = self.rng.below(m.lines.len());
            let (lint, msg) = CLIPPY[self.rng.below(CLIPPY.len())];
            out.push_str(&format!(
                "warning: {msg}\n   --> {}:{}:9\n    |\n{:>3} | {}\n    |\n    = help: for further information visit https://rust-lang.github.io/rust-clippy/master/index.html#{lint}\n\n",
                m.path,
                k + 1,
                k + 1,
                m.lines[k]
            ));
        }
        out.push_str(&format!("warning: `{}` (lib) generated {n} warnings\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 2.31s\n", self.krate));
        self.call(None, "bash", json!({"command": "cargo clippy --all-targets 2>&1"}), out);
    }

    fn diff(&mut self) {
        let mut out = String::new();
        let mut by_path: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
        for (p, o, n) in &self.edits {
            by_path.entry(p.as_str()).or_default().push((o.as_str(), n.as_str()));
        }
        let mut paths: Vec<&&str> = by_path.keys().collect();
        paths.sort();
        for p in paths {
            out.push_str(&format!("diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n"));
            for (o, n) in &by_path[*p] {
                out.push_str(&format!("@@ -1 +1 @@\n-{o}\n+{n}\n"));
            }
        }
        if out.is_empty() {
            out.push_str("[no changes]\n");
        }
        self.call(None, "bash", json!({"command": "git diff"}), out);
    }
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

fn speaker_of(turn: &Turn) -> String {
    turn.speaker().map_or_else(|| turn.role().as_str().to_string(), str::to_string)
}

/// Writes a transcript in the LoCoMo format (a one-sample array) that the LoCoMo loader reads back
/// to the same turns and QA items.
///
/// Sessions are runs of turns with the same timestamp (`session_<n>_date_time` is that
/// timestamp; turns without one make sessions without a date). Turns get `dia_id`s `D<n>:<k>`,
/// their speaker's name (the role's name when a turn has none) and their plain text; QA evidence
/// is written as the `dia_id`s of the evidence turns (session-level groups become one id per
/// turn), numeric categories as numbers. The first `user` turn's speaker is `speaker_a`. LoCoMo
/// has no pins, tool blocks or provenance: pins are not written and tool turns become text.
pub fn to_locomo_json(t: &Transcript) -> Value {
    let speaker_a = t.turns.iter().find(|x| x.role() == Role::User).or(t.turns.first()).map_or_else(|| "user".to_string(), speaker_of);
    let speaker_b = t.turns.iter().map(speaker_of).find(|s| *s != speaker_a).unwrap_or_else(|| "assistant".to_string());
    let mut conv = Map::new();
    conv.insert("speaker_a".into(), Value::String(speaker_a));
    conv.insert("speaker_b".into(), Value::String(speaker_b));
    let mut dia: Vec<String> = Vec::with_capacity(t.turns.len());
    let mut session = 0usize;
    let mut k = 0usize;
    let mut current: Vec<Value> = Vec::new();
    let mut prev_ts: Option<Option<&str>> = None;
    for turn in &t.turns {
        let ts = turn.timestamp();
        if prev_ts != Some(ts) {
            if session > 0 {
                conv.insert(format!("session_{session}"), Value::Array(std::mem::take(&mut current)));
            }
            session += 1;
            k = 0;
            if let Some(d) = ts {
                conv.insert(format!("session_{session}_date_time"), Value::String(d.to_string()));
            }
            prev_ts = Some(ts);
        }
        k += 1;
        let id = format!("D{session}:{k}");
        current.push(json!({"speaker": speaker_of(turn), "dia_id": id, "text": turn.plain_text()}));
        dia.push(id);
    }
    if session > 0 {
        conv.insert(format!("session_{session}"), Value::Array(current));
    }
    let qa: Vec<Value> = t
        .qa
        .iter()
        .map(|q| {
            let evidence: Vec<&String> = q.evidence.iter().flatten().filter_map(|&i| dia.get(i)).collect();
            let category = q.category.parse::<u64>().map_or_else(|_| Value::String(q.category.clone()), Value::from);
            let mut item = Map::new();
            item.insert("question".into(), Value::String(q.question.clone()));
            if let Some(a) = &q.answer {
                item.insert("answer".into(), Value::String(a.clone()));
            }
            item.insert("evidence".into(), json!(evidence));
            item.insert("category".into(), category);
            Value::Object(item)
        })
        .collect();
    json!([{"sample_id": t.id, "conversation": conv, "qa": qa}])
}

/// Whether `s` is a valid OpenAI message `name` (letters, digits, `_`, `-`; up to 64).
fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Writes a transcript as an OpenAI chat object `{"id", "messages": [...]}` that the OpenAI-chat
/// loader reads back to the same turns.
///
/// The pins, in layer order and separated by blank lines, form the first `system` message (the
/// format has one instruction slot, so a Task pin loads back as part of the System pin). When
/// there are no pins but the transcript has system turns, an empty first system message keeps them
/// turns. Assistant turns carry their text (or `null`) and `tool_calls` (`type: function`,
/// arguments as a JSON string); each tool result is a `role: tool` message with its
/// `tool_call_id`. Speakers that are valid OpenAI names become `name`. Not representable, so not
/// written: timestamps, tags, provenance, priorities, and a result's error flag (tool output text
/// is kept as is).
pub fn to_openai_json(t: &Transcript) -> Value {
    let mut messages: Vec<Value> = Vec::with_capacity(t.turns.len() + 1);
    let mut pins: Vec<&(PinLayer, String)> = t.pins.iter().collect();
    pins.sort_by_key(|p| p.0);
    if !pins.is_empty() {
        let text = pins.iter().map(|p| p.1.as_str()).collect::<Vec<_>>().join("\n\n");
        messages.push(json!({"role": "system", "content": text}));
    } else if t.turns.iter().any(|x| x.role() == Role::System) {
        messages.push(json!({"role": "system", "content": ""}));
    }
    for turn in &t.turns {
        let mut texts: Vec<&str> = Vec::new();
        let mut calls: Vec<Value> = Vec::new();
        let mut results: Vec<Value> = Vec::new();
        for b in turn.blocks() {
            match b {
                Block::Text { text } => texts.push(text),
                Block::ToolCall { call_id, name, arguments } => calls.push(json!({
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments.to_string()},
                })),
                Block::ToolResult { call_id, content, .. } => {
                    results.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}))
                }
            }
        }
        if !texts.is_empty() || !calls.is_empty() {
            let role = match turn.role() {
                Role::System => "system",
                Role::User | Role::Tool => "user",
                Role::Assistant => "assistant",
            };
            let role = if calls.is_empty() { role } else { "assistant" };
            let mut m = Map::new();
            m.insert("role".into(), Value::String(role.into()));
            m.insert("content".into(), if texts.is_empty() { Value::Null } else { Value::String(texts.join("\n")) });
            if !calls.is_empty() {
                m.insert("tool_calls".into(), Value::Array(calls));
            }
            if let Some(s) = turn.speaker().filter(|s| valid_name(s)) {
                m.insert("name".into(), Value::String(s.to_string()));
            }
            messages.push(Value::Object(m));
        }
        messages.extend(results);
    }
    json!({"id": t.id, "messages": messages})
}

// ---------------------------------------------------------------------------------------------
// Word lists
// ---------------------------------------------------------------------------------------------

const MONTHS: &[&str] =
    &["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

const FIRST_NAMES: &[&str] = &[
    "Caroline", "Melanie", "Joanna", "Nate", "Tim", "John", "Maria", "Gina", "Jon", "Audrey", "Andrew", "James", "Deborah",
    "Evan", "Sam", "Calvin", "Dave", "Priya", "Kenji", "Lucia", "Omar", "Hannah", "Felix", "Ingrid",
];

/// Third persons (never speakers: no overlap with [`FIRST_NAMES`]).
const WOMEN: &[&str] = &[
    "Ana", "Clara", "Elif", "Farah", "Iris", "Lena", "Nadia", "Paula", "Rosa", "Tara", "Vera", "Ximena", "Zoe", "Amira",
    "Chloe", "Esme", "Greta", "Isla", "Keiko", "Mila", "Olga", "Rania", "Ulla", "Wanda", "Yara",
];

/// Third persons (never speakers: no overlap with [`FIRST_NAMES`]).
const MEN: &[&str] = &[
    "Ben", "Diego", "George", "Hugo", "Jamal", "Kofi", "Marco", "Oscar", "Quentin", "Stefan", "Umar", "Wes", "Yusuf",
    "Bruno", "Dmitri", "Finn", "Hamid", "Joel", "Luis", "Nico", "Pedro", "Sven", "Tomas", "Viktor", "Zane",
];

const RELATIONS_F: &[&str] = &["sister", "aunt", "niece", "grandmother"];
const RELATIONS_M: &[&str] = &["brother", "uncle", "nephew", "grandfather"];
const RELATIONS_ANY: &[&str] = &["cousin", "best friend", "neighbour", "old roommate", "colleague", "childhood friend"];

const CITIES: &[&str] = &[
    "Lisbon", "Porto", "Valencia", "Lyon", "Ghent", "Utrecht", "Leipzig", "Krakow", "Tallinn", "Bergen", "Galway",
    "Edinburgh", "Bologna", "Seville", "Vienna", "Ljubljana", "Montreal", "Halifax", "Portland", "Austin", "Denver",
    "Tucson", "Melbourne", "Hobart", "Wellington", "Osaka", "Busan", "Taipei", "Hanoi", "Nairobi", "Accra", "Cape Town",
    "Santiago", "Cordoba", "Medellin", "Oaxaca", "Reykjavik", "Tromso", "Marseille", "Antwerp",
];

const PLACES: &[&str] = &[
    "cabin", "studio", "office", "parents' house", "lake house", "beach flat", "workshop", "allotment shed", "garage",
    "bakery", "climbing gym", "boat", "shared flat", "caravan", "rehearsal room",
];

const PASSWORD_WORDS: &[&str] = &[
    "tulip", "maple", "heron", "cobalt", "juniper", "saffron", "otter", "lantern", "pebble", "willow", "comet", "fennel",
    "marble", "thistle", "walnut", "puffin", "clover", "ember", "harbor", "quartz",
];

const ANIMALS: &[&str] =
    &["dog", "cat", "rabbit", "parrot", "tortoise", "hamster", "ferret", "goldfish", "guinea pig", "horse", "gecko", "budgie"];

const PET_NAMES: &[&str] = &[
    "Biscuit", "Pepper", "Mochi", "Luna", "Pickles", "Waffles", "Juniper", "Ziggy", "Noodle", "Clementine", "Basil",
    "Pretzel", "Olive", "Tofu", "Maple", "Gizmo", "Dumpling", "Sprout", "Nugget", "Cricket",
];

const CODE_ADJ: &[&str] = &[
    "Amber", "Blue", "Silent", "Copper", "Northern", "Velvet", "Iron", "Crimson", "Golden", "Hidden", "Bright", "Lunar",
    "Coral", "Rapid", "Quiet", "Emerald", "Wild", "Polar", "Scarlet", "Granite",
];

const CODE_NOUN: &[&str] = &[
    "Falcon", "Heron", "Harbor", "Orchard", "Beacon", "Meadow", "Summit", "Compass", "Lantern", "Glacier", "Canyon",
    "Prairie", "Atlas", "Ember", "Tide", "Kestrel", "Juniper", "Quarry", "Delta", "Aurora",
];

const FAVOURITES: &[(&str, &[&str])] = &[
    ("book", &["Piranesi", "Middlemarch", "The Left Hand of Darkness", "The Remains of the Day", "Circe", "Stoner", "Pachinko"]),
    ("film", &["Spirited Away", "Paddington 2", "Arrival", "The Grand Budapest Hotel", "Amelie", "Heat", "Moonlight"]),
    ("restaurant", &["Casa Romero", "The Blue Lantern", "Little Saigon Kitchen", "Osteria Nonna", "Pho Hanoi", "Tandoor House"]),
    ("band", &["Khruangbin", "Fleetwood Mac", "Radiohead", "The National", "Bombay Bicycle Club", "Phoenix"]),
    ("board game", &["Wingspan", "Catan", "Carcassonne", "Azul", "Ticket to Ride", "Codenames", "Terraforming Mars"]),
    ("hiking trail", &["the Ridge Loop", "Eagle Falls Trail", "the Old Quarry Path", "Cedar Creek Trail", "the Coastal Walk"]),
    ("coffee shop", &["Bean There", "The Daily Grind", "Kaffe Hygge", "Second Cup Corner", "Moka House", "Drip Lab"]),
    ("podcast", &["The Memory Palace", "99% Invisible", "Radiolab", "Song Exploder", "No Such Thing As A Fish"]),
];

const ITEMS: &[&str] = &[
    "camping stove", "bike pump", "cordless drill", "tent", "guitar", "waffle iron", "projector", "snowboard",
    "sewing machine", "ladder", "pasta maker", "telescope", "kayak paddle", "record player", "pressure washer",
];

const APPOINTMENTS: &[&str] =
    &["dentist", "eye doctor", "physio", "vet", "haircut", "car service", "tax advisor", "dermatologist", "piano tuner"];

const ANSWER_OPENERS: &[&str] = &[
    "Pretty good, thanks!", "Not bad at all.", "Honestly, a bit hectic.", "Oh, it was lovely.", "Yes! Finally.",
    "Not yet, but it's on my list.", "Ha, kind of.", "Good question.", "Mostly quiet, which I needed.",
];

const REACTIONS: &[&str] = &[
    "That sounds amazing!", "Haha, classic.", "Oh no, that's rough.", "I love that.", "Same here, honestly.",
    "Fair enough.", "No way!", "That's so nice to hear.", "Ooh, tell me more.", "Oh, interesting.",
];

const DAYPARTS: &[&str] = &["morning", "afternoon", "evening", "whole weekend", "day"];

const ACTIVITIES: &[&str] = &[
    "reorganising my bookshelf", "at the farmers' market", "trying a new curry recipe", "walking by the river",
    "watching old sci-fi films", "fixing my bike", "repotting plants", "at a friend's birthday party",
    "catching up on emails", "at the climbing gym", "doing a jigsaw puzzle", "at a pottery class",
];

const WEATHER: &[&str] = &["It was pouring", "It was sunny", "Super windy", "Freezing", "Really humid", "Grey and drizzly"];

const WEATHER_DID: &[&str] = &[
    "stayed in with a book", "went for a run anyway", "made soup", "took the long way home", "finally cleaned the balcony",
    "had a picnic in the park", "baked bread",
];

const SHOWS: &[&str] = &[
    "that detective series", "The Long Road", "Salt and Stone", "the baking show", "a documentary about octopuses",
    "Night Harbor", "the new space drama", "that cooking competition",
];

const OPINIONS: &[&str] = &["amazing", "a bit disappointing", "so good", "weird but fun", "surprisingly great", "fine, I guess"];

const FOODS: &[&str] =
    &["lasagna", "tacos", "a big salad", "ramen", "homemade pizza", "lentil soup", "dumplings", "grilled fish", "pancakes"];

const HABITS: &[&str] = &[
    "drink more water", "go to bed earlier", "call my parents", "read before bed", "cook at home", "stretch in the morning",
    "walk to work", "spend less time on my phone",
];

const PLANS: &[&str] = &[
    "taking a weekend trip", "signing up for a dance class", "painting the living room", "learning some Italian",
    "volunteering at the food bank", "joining a running club", "visiting my grandparents",
];

const CRATES: &[&str] = &["tidepool", "quillmark", "brambleway", "ironleaf", "copperline", "saltmarsh", "lanternfish", "driftwood"];

const MODULE_NAMES: &[&str] = &[
    "parser", "lexer", "scheduler", "cache", "auth", "router", "storage", "metrics", "retry", "config", "codec", "session",
    "index", "planner", "shard", "ledger", "queue", "webhook", "throttle", "snapshot", "compactor", "gateway", "registry",
    "telemetry",
];

const MODULE_DOCS: &[&str] = &[
    "bounded queues and back-pressure",
    "leases and their renewal",
    "the on-disk format and its checksums",
    "request routing across shards",
    "retries with jittered back-off",
    "compaction of old segments",
];

const NOUNS: &[&str] = &[
    "header", "frame", "token", "batch", "entry", "segment", "lease", "cursor", "chunk", "window", "record", "checkpoint",
    "manifest", "shard", "span", "buffer", "epoch",
];

const VERBS: &[&str] = &[
    "parse", "load", "flush", "resolve", "encode", "decode", "merge", "split", "validate", "refresh", "compact", "evict",
    "schedule", "drain", "apply", "rollback", "emit", "record", "fetch",
];

const CONST_DOCS: &[&str] = &[
    "Upper bound enforced on every write.",
    "Chosen from production traces; see the design doc.",
    "Must match the value the deploy scripts pass in.",
    "Lower values make the integration tests flaky.",
];

const ERR_VARIANTS: &[(&str, &str)] = &[
    ("Overflow", "The input exceeded a configured limit."),
    ("Stale", "The state was read after it expired."),
    ("Closed", "The handle was closed."),
    ("Corrupt", "The data failed its checksum."),
];

const STRUCT_DOCS: &[&str] = &["Owned by one worker; cheap to clone.", "Shared state, guarded by the caller.", "Configuration read at start-up.", "One entry per live lease."];

const FN_DOCS: &[&str] = &[
    "Processes one input and returns how many bytes were consumed.",
    "Idempotent: calling it twice has no further effect.",
    "Fails with `Overflow` when the input is over the limit.",
    "Called from the scheduler on every tick.",
];

const TEST_CASES: &[&str] = &[
    "handles_empty", "rejects_overflow", "round_trips", "respects_limit", "is_idempotent", "after_restart",
    "with_large_input", "under_contention", "keeps_order",
];

const CLIPPY: &[(&str, &str)] = &[
    ("needless_range_loop", "the loop variable `i` is only used to index `input`"),
    ("redundant_clone", "redundant clone"),
    ("manual_saturating_arithmetic", "manual saturating arithmetic"),
    ("cast_possible_truncation", "casting `u64` to `usize` may truncate the value on targets with 32-bit wide pointers"),
    ("too_many_lines", "this function has too many lines (112/100)"),
];

const BACKTRACE: &[&str] = &[
    "rust_begin_unwind\n             at /rustc/library/std/src/panicking.rs:692:5",
    "core::panicking::panic_fmt\n             at /rustc/library/core/src/panicking.rs:75:14",
    "core::panicking::assert_failed_inner\n             at /rustc/library/core/src/panicking.rs:436:17",
    "core::panicking::assert_failed\n             at /rustc/library/core/src/panicking.rs:391:5",
    "core::ops::function::FnOnce::call_once\n             at /rustc/library/core/src/ops/function.rs:250:5",
    "test::__rust_begin_short_backtrace\n             at /rustc/library/test/src/lib.rs:648:18",
    "test::run_test::{closure}\n             at /rustc/library/test/src/lib.rs:617:60",
    "std::panicking::try::do_call\n             at /rustc/library/std/src/panicking.rs:584:40",
    "std::panic::catch_unwind\n             at /rustc/library/std/src/panic.rs:358:14",
    "test::run_test_in_process\n             at /rustc/library/test/src/lib.rs:640:27",
    "std::sys::backtrace::__rust_begin_short_backtrace\n             at /rustc/library/std/src/sys/backtrace.rs:152:18",
    "std::thread::Builder::spawn_unchecked_::{closure}\n             at /rustc/library/std/src/thread/mod.rs:559:17",
    "std::sys::pal::unix::thread::Thread::new::thread_start\n             at /rustc/library/std/src/sys/pal/unix/thread.rs:105:17",
];

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::refs::salient_terms;
    use crate::replay::loaders::{load_file, Format};
    use crate::replay::metrics::{answer_present, normalize_answer};
    use crate::tokens::{Encoding, TokenCounter};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    /// A file in the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            TempFile(std::env::temp_dir().join(format!("ctxwin-synth-{}-{name}", std::process::id())))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// How sample files are written: pretty JSON and a final newline.
    fn render(v: &Value) -> Result<String, serde_json::Error> {
        Ok(serde_json::to_string_pretty(v)? + "\n")
    }

    /// The committed samples: file name and content, as the generator makes them now.
    fn samples() -> Vec<(&'static str, Transcript, Value)> {
        let c = conversation(7, 600);
        let a = agent_session(11, 300);
        let (cj, aj) = (to_locomo_json(&c), to_openai_json(&a));
        vec![("synth-conversation.locomo.json", c, cj), ("synth-agent.openai.json", a, aj)]
    }

    fn samples_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets").join("samples")
    }

    fn same(a: &Transcript, b: &Transcript) -> bool {
        a.id == b.id && a.turns == b.turns && a.pins == b.pins && a.qa == b.qa
    }

    #[test]
    fn same_seed_same_transcript() {
        assert!(same(&conversation(3, 400), &conversation(3, 400)));
        assert!(same(&agent_session(3, 200), &agent_session(3, 200)));
        assert!(conversation(3, 400).turns != conversation(4, 400).turns);
        assert!(agent_session(3, 200).turns != agent_session(4, 200).turns);
    }

    #[test]
    fn exact_turn_counts() {
        for n in [0, 1, 2, 3, 37, 250] {
            assert_eq!(conversation(9, n).turns.len(), n, "conversation of {n}");
            assert_eq!(agent_session(9, n).turns.len(), n, "agent session of {n}");
        }
    }

    #[test]
    fn conversation_plants_facts_with_distractors() {
        let g = generate_conversation(7, 600);
        let t = &g.transcript;
        assert!(t.qa.len() >= 30, "{} QA items", t.qa.len());
        // Sessions: runs of one date, 20–40 turns (the last may be shorter), two named speakers.
        let mut lens: Vec<usize> = Vec::new();
        for (i, turn) in t.turns.iter().enumerate() {
            if i == 0 || turn.timestamp() != t.turns[i - 1].timestamp() {
                lens.push(0);
            }
            if let Some(l) = lens.last_mut() {
                *l += 1;
            }
        }
        let (last, full) = lens.split_last().map_or((0, &[][..]), |(l, f)| (*l, f));
        assert!(full.iter().all(|l| (20..=40).contains(l)), "{lens:?}");
        assert!(last <= 40);
        let speakers: HashSet<&str> = t.turns.iter().filter_map(Turn::speaker).collect();
        assert_eq!(speakers.len(), 2);

        let questions: HashSet<&str> = t.qa.iter().map(|q| q.question.as_str()).collect();
        assert_eq!(questions.len(), t.qa.len(), "questions are unique");
        let mut with_distractor = 0;
        for (q, hook) in t.qa.iter().zip(&g.hooks) {
            let ev = q.evidence[0][0];
            assert!(ev < 540, "planted in the first 90%");
            let turn = &t.turns[ev];
            let answer = q.answer.as_deref().unwrap_or_default();
            assert!(answer_present(&normalize_answer(&turn.plain_text()), answer), "{answer:?} in {:?}", turn.plain_text());
            assert!(q.question.contains(turn.speaker().unwrap_or_default()), "{} names the owner", q.question);
            assert!(q.question.contains(hook.as_str()));
            assert_eq!((q.category.as_str(), q.headline), ("planted", true));
            if t.turns.iter().enumerate().any(|(i, x)| i != ev && x.plain_text().contains(hook.as_str())) {
                with_distractor += 1;
            }
        }
        assert!(with_distractor * 10 >= t.qa.len() * 9, "{with_distractor} of {} facts have distractors", t.qa.len());
    }

    #[test]
    fn planted_facts_are_findable_but_distractors_compete() -> TestResult {
        let t = conversation(7, 600);
        let mut e = Engine::new(EngineConfig::default())?;
        for turn in &t.turns {
            e.push(turn.clone())?;
        }
        let (mut top1, mut top10) = (0, 0);
        for q in &t.qa {
            let hits: Vec<usize> = e.search(&q.question, 10)?.iter().map(|h| h.turn_id).collect();
            top1 += usize::from(hits.first() == Some(&q.evidence[0][0]));
            top10 += usize::from(hits.contains(&q.evidence[0][0]));
        }
        // Findable (lexical search gets most into its top 10), but the distractors outrank the plant
        // often enough that ranking matters (seed 7: 17 of 36 first, all 36 in the top 10).
        eprintln!("BM25 over {} questions: evidence first {top1}, in the top 10 {top10}", t.qa.len());
        assert!(top10 * 10 >= t.qa.len() * 8, "top-10 {top10} of {}", t.qa.len());
        assert!(top1 * 10 <= t.qa.len() * 8, "top-1 {top1} of {}: the distractors do not compete", t.qa.len());
        Ok(())
    }

    #[test]
    fn agent_session_pairs_calls_and_recalls_old_identifiers() {
        let t = agent_session(11, 300);
        assert_eq!(t.pins.iter().map(|p| p.0).collect::<Vec<_>>(), [PinLayer::System, PinLayer::Task]);
        assert_eq!(t.notes.normalize, Default::default());
        let mut ids = HashSet::new();
        for (i, turn) in t.turns.iter().enumerate() {
            for id in turn.call_ids() {
                assert!(ids.insert(id.to_string()), "call id {id} is unique");
                let next: Vec<&str> = t.turns.get(i + 1).map(|n| n.result_ids().collect()).unwrap_or_default();
                assert_eq!(next, [id], "the result of {id} follows its call");
            }
        }
        let names: HashSet<String> = t
            .turns
            .iter()
            .flat_map(|x| x.blocks())
            .filter_map(|b| match b {
                Block::ToolCall { name, .. } => Some(name.clone()),
                Block::Text { .. } | Block::ToolResult { .. } => None,
            })
            .collect();
        assert_eq!(names, ["bash", "read_file", "edit_file", "grep"].map(String::from).into_iter().collect());
        assert!(t.turns.iter().filter(|x| x.role() == Role::User).count() >= 5);

        let mut counter = TokenCounter::new(Encoding::O200kBase, 1024);
        let long = t.turns.iter().filter(|x| x.role() == Role::Tool && counter.count(&x.plain_text()) > 2000).count();
        assert!(long >= 5, "{long} tool results over 2,000 tokens");

        // Long range: assistant turns in the last third use identifiers first seen in the first tenth
        // and not in the 20 turns before.
        let texts: Vec<String> = t.turns.iter().map(Turn::plain_text).collect();
        let early = texts[..30].join("\n");
        let far = (200..300)
            .filter(|&i| t.turns[i].role() == Role::Assistant)
            .filter(|&i| {
                salient_terms(&texts[i]).iter().any(|w| early.contains(w.as_str()) && !texts[i - 20..i].iter().any(|x| x.contains(w.as_str())))
            })
            .count();
        assert!(far >= 5, "{far} late assistant turns recall early identifiers");
    }

    #[test]
    fn locomo_round_trip() -> TestResult {
        for (name, t) in [("conv", conversation(5, 300)), ("agent", agent_session(5, 120))] {
            let f = TempFile::new(&format!("{name}.locomo.json"));
            std::fs::write(&f.0, render(&to_locomo_json(&t))?)?;
            let loaded = load_file(&f.0, Format::Auto)?;
            assert_eq!(loaded.len(), 1);
            let l = &loaded[0];
            assert_eq!((l.format, l.id.as_str()), ("locomo", t.id.as_str()));
            assert_eq!(l.turns.len(), t.turns.len());
            assert_eq!(l.qa.len(), t.qa.len());
            assert_eq!(l.notes, Default::default());
            if name == "conv" {
                // A generated conversation is exactly what LoCoMo holds: whole values survive.
                assert!(same(l, &t));
            }
        }
        Ok(())
    }

    #[test]
    fn openai_round_trip() -> TestResult {
        for (name, t) in [("agent", agent_session(5, 200)), ("conv", conversation(5, 120))] {
            let f = TempFile::new(&format!("{name}.openai.json"));
            std::fs::write(&f.0, render(&to_openai_json(&t))?)?;
            let loaded = match load_file(&f.0, Format::Auto) {
                Err(e) if e.to_string().contains("not available yet") => {
                    eprintln!("skipped: the OpenAI-chat loader is not available in this tree yet ({e})");
                    return Ok(());
                }
                other => other?,
            };
            assert_eq!(loaded.len(), 1);
            let l = &loaded[0];
            assert_eq!((l.format, l.id.as_str()), ("openai-chat", t.id.as_str()));
            assert_eq!(l.turns.len(), t.turns.len());
            if name == "agent" {
                assert_eq!(l.qa.len(), t.qa.len());
                assert_eq!(l.turns, t.turns);
                let pins: Vec<&str> = t.pins.iter().map(|p| p.1.as_str()).collect();
                assert_eq!(l.pins, vec![(PinLayer::System, pins.join("\n\n"))]);
            } else {
                // OpenAI chat has no place for QA items: a conversation's are not written.
                assert!(l.qa.is_empty());
            }
        }
        Ok(())
    }

    #[test]
    fn committed_samples_are_current() -> TestResult {
        for (name, _, v) in samples() {
            let path = samples_dir().join(name);
            let on_disk = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            assert!(
                on_disk == render(&v)?,
                "{name} differs from what the generator makes now; regenerate it with \
                 `cargo test --lib regenerate_samples -- --ignored` and commit the result"
            );
        }
        Ok(())
    }

    /// Writes the samples under `datasets/samples/` (run with `--ignored`) and prints their sizes.
    #[test]
    #[ignore = "writes datasets/samples/; run on purpose"]
    fn regenerate_samples() -> TestResult {
        std::fs::create_dir_all(samples_dir())?;
        for (name, t, v) in samples() {
            std::fs::write(samples_dir().join(name), render(&v)?)?;
            let mut e = Engine::new(EngineConfig::default())?;
            for turn in &t.turns {
                e.push(turn.clone())?;
            }
            let tokens: usize = (0..e.len()).filter_map(|i| e.turn_tokens(i)).sum();
            let pin_tokens: usize = t.pins.iter().map(|p| e.count_tokens(&p.1)).sum();
            let max = (0..e.len()).filter_map(|i| e.turn_tokens(i)).max().unwrap_or_default();
            println!(
                "{name}: {} turns, {} QA items, {tokens} history tokens (o200k_base, framed; largest turn {max}), {pin_tokens} pin tokens",
                t.turns.len(),
                t.qa.len()
            );
        }
        Ok(())
    }
}
