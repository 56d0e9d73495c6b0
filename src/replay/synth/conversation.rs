//! A generated two-person chat in dated sessions with planted facts, one QA item per fact, and
//! small talk from templates and word lists around them.

use std::collections::HashSet;
use std::path::Path;

use super::facts::{Fact, make_fact};
use super::rng::Rng;
use super::words::{
    ACTIVITIES, ANSWER_OPENERS, DAYPARTS, FIRST_NAMES, FOODS, HABITS, MONTHS, OPINIONS, PLANS, REACTIONS, RELATIONS_ANY, SHOWS, WEATHER, WEATHER_DID,
};
use crate::replay::transcript::{QaItem, Transcript};
use crate::turn::{Block, Role, Turn};

/// (year, month 1–12, day 1–31) of `days` since 1970-01-01 (Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(days: i64) -> (i64, usize, usize) {
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
    generate(seed, turns).0
}

/// Who speaks each turn, in which session, and the sessions' dates.
struct Layout {
    speaker: Vec<usize>,
    session_of: Vec<usize>,
    dates: Vec<String>,
}

/// The conversation and, per QA item, its fact's hook (the word its distractors share).
pub(super) fn generate(seed: u64, turns: usize) -> (Transcript, Vec<String>) {
    let mut rng = Rng::new(seed ^ 0xC0_4E_75_A7);
    let a = rng.pick(FIRST_NAMES).to_string();
    let mut b = rng.pick(FIRST_NAMES).to_string();
    while b == a {
        b = rng.pick(FIRST_NAMES).to_string();
    }
    let names = [a, b];
    let layout = layout(&mut rng, turns);
    let (planted, slot) = plant(&mut rng, &names, &layout.speaker);
    let mut t = Transcript::generated(format!("synth-conversation-{seed}"), Path::new("<synth>"));
    let mut prev_question = false;
    let mut k_in_session = 0;
    for (i, planted_text) in slot.into_iter().enumerate() {
        if i > 0 && layout.session_of[i] != layout.session_of[i - 1] {
            k_in_session = 0;
            prev_question = false;
        }
        k_in_session += 1;
        let who = layout.speaker[i];
        let other = &names[1 - who];
        let first_of_session = k_in_session == 1;
        let text = match planted_text {
            Some(s) => match opener(&mut rng, other, first_of_session, prev_question) {
                Some(o) => format!("{o} {s}"),
                None => s,
            },
            None => filler(&mut rng, other, first_of_session, prev_question),
        };
        prev_question = text.ends_with('?');
        let role = if who == 0 { Role::User } else { Role::Assistant };
        let s = layout.session_of[i];
        t.turns.push(
            Turn::new(role, vec![Block::text(text)])
                .with_speaker(names[who].as_str())
                .with_timestamp(layout.dates[s].as_str())
                .with_source_id(format!("D{}:{k_in_session}", s + 1)),
        );
    }
    let mut hooks = Vec::with_capacity(planted.len());
    for (i, f) in planted {
        hooks.push(f.hook);
        t.qa.push(QaItem { question: f.question, answer: Some(f.answer), evidence: vec![vec![i]], category: "planted".to_string(), headline: true });
    }
    (t, hooks)
}

/// Sessions of 20–40 turns a few days apart; mostly alternating speakers.
fn layout(rng: &mut Rng, turns: usize) -> Layout {
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
    Layout { speaker, session_of, dates }
}

/// Facts planted at random turns in the first 90%, owned by whoever speaks there, and the text
/// each turn must carry (a plant or a distractor; `None` for small talk).
fn plant(rng: &mut Rng, names: &[String; 2], speaker: &[usize]) -> (Vec<(usize, Fact)>, Vec<Option<String>>) {
    let turns = speaker.len();
    let limit = turns * 9 / 10;
    let mut used = HashSet::new();
    let mut planted: Vec<(usize, Fact)> = Vec::new();
    for (i, &who) in speaker.iter().enumerate().take(limit) {
        if !rng.chance(1.0 / 12.0) {
            continue;
        }
        if let Some(f) = make_fact(rng, &names[who], &mut used) {
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
    (planted, slot)
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
        2 => format!(
            "Work has been {} this week{}.",
            rng.pick(&["hectic", "slow", "surprisingly fun", "exhausting", "a bit weird"]),
            rng.pick(&["", ", lots of meetings", ", but the team is great", ", I need a holiday"])
        ),
        3 => format!("I finally finished {}, and the ending was {}.", rng.pick(SHOWS), rng.pick(OPINIONS)),
        4 => format!("We had {} for dinner and it was {}.", rng.pick(FOODS), rng.pick(OPINIONS)),
        5 => format!("I've been trying to {} lately.", rng.pick(HABITS)),
        6 => format!("I'm thinking about {} next month.", rng.pick(PLANS)),
        7 => format!(
            "The {} I ordered finally arrived, it's {}.",
            rng.pick(&["lamp", "rug", "kettle", "backpack", "desk chair", "rain jacket"]),
            rng.pick(OPINIONS)
        ),
        _ => format!(
            "My {} called yesterday, {}.",
            rng.pick(RELATIONS_ANY),
            rng.pick(&["we talked for ages", "it was nice to catch up", "there's always some drama", "they're doing well"])
        ),
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::engine::{Engine, EngineConfig};
    use crate::replay::metrics::{answer_present, normalize_answer};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn conversation_plants_facts_with_distractors() {
        let (t, hooks) = generate(7, 600);
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
        for (q, hook) in t.qa.iter().zip(&hooks) {
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
}
