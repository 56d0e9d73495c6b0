//! A LongMemEval-shaped haystack: a user and an assistant in dated sessions of ten turns, the user
//! asking for help and the assistant answering at length (300–1,000 tokens), with facts about the
//! user planted in a few user turns and a question per fact whose evidence is the planting turn.

use std::collections::HashSet;
use std::path::Path;

use super::conversation::civil_from_days;
use super::facts::make_fact;
use super::rng::Rng;
use super::words::{ACTIVITIES, CITIES, DAYPARTS, FOODS, HABITS, MONTHS, NOUNS, PLACES, PLANS, VERBS};
use crate::replay::transcript::{QaItem, Transcript};
use crate::turn::{Block, Role, Turn};

/// Turns per session (five user requests, five answers).
pub(crate) const SESSION_TURNS: usize = 10;
/// Shortest and longest assistant answer, in (approximate) tokens.
const ANSWER_TOKENS: (usize, usize) = (300, 1000);
/// Bytes per token of the answers' plain English (o200k/cl100k count about one token per 4.5 bytes).
const BYTES_PER_TOKEN: usize = 5;

/// What the user asks for help with.
const REQUESTS: &[&str] = &[
    "Can you help me plan {plan}? I only have a {daypart} free each week.",
    "I keep meaning to {habit}. Any tips that actually work?",
    "What should I cook this week? I am tired of {food}.",
    "I am thinking about a trip to {city}. What should I know before I go?",
    "How do I stay motivated when I am {activity} on my own?",
    "Could you explain how to {verb} a {noun} properly? I keep getting it wrong.",
    "I want to start {plan} but I am not sure where to begin.",
    "My evenings disappear somehow. How do I get back a {daypart} for myself?",
];

/// Sentences of the assistant's answers.
const ADVICE: &[&str] = &[
    "For {plan}, start by setting aside one {daypart} a week and writing down what you will need.",
    "If you are {activity}, try to {habit} as well; small routines add up over a month.",
    "A simple option is {food}, which keeps well and is easy to prepare in batches on a Sunday.",
    "Many people find it helps to {habit} while they are {plan}, because one habit carries the other.",
    "Try to {verb} each {noun} before you move on to the next, so nothing is left half done.",
    "{city} is a good example: people there often spend a {daypart} {activity} and swear by it.",
    "Keep a short list of what worked and what did not; after a few weeks the pattern is obvious.",
    "Do not aim for perfection on the first try; a rough version you repeat beats a perfect plan you skip.",
    "If something feels like too much, cut it in half and do only the first half this week.",
    "It also helps to tell a friend what you are doing, since a little accountability goes a long way.",
    "When the weather turns, move the plan indoors rather than dropping it altogether.",
    "Check in with yourself at the end of each {daypart}: what took longer than you expected, and why?",
    "A good rule of thumb is to {verb} the {noun} early and review it once more before the end of the day.",
    "You could also look for a local group near {place}; people there are usually happy to share tips.",
];

/// Openers of the assistant's answers.
const OPENERS: &[&str] = &["Sure! Here is a detailed answer.", "Great question.", "Happy to help with that.", "Good idea; here is how I would approach it."];

/// Fills `{plan}`, `{habit}`… in `template` from the word lists.
fn fill(rng: &mut Rng, template: &str) -> String {
    let mut out = template.to_string();
    for (slot, words) in [
        ("{plan}", PLANS),
        ("{habit}", HABITS),
        ("{food}", FOODS),
        ("{city}", CITIES),
        ("{activity}", ACTIVITIES),
        ("{verb}", VERBS),
        ("{noun}", NOUNS),
        ("{daypart}", DAYPARTS),
        ("{place}", PLACES),
    ] {
        while out.contains(slot) {
            out = out.replacen(slot, rng.pick(words), 1);
        }
    }
    out
}

/// An answer of about `tokens` tokens: an opener, then paragraphs of advice and numbered steps.
fn answer(rng: &mut Rng, tokens: usize) -> String {
    let target = tokens * BYTES_PER_TOKEN;
    let mut out = rng.pick(OPENERS).to_string();
    let mut step = 1;
    while out.len() < target {
        out.push_str("\n\n");
        if rng.chance(0.3) {
            let s = rng.pick(ADVICE);
            out.push_str(&format!("{step}. {}", fill(rng, s)));
            step += 1;
        } else {
            for k in 0..rng.range(2, 4) {
                if k > 0 {
                    out.push(' ');
                }
                let s = rng.pick(ADVICE);
                out.push_str(&fill(rng, s));
            }
        }
    }
    out
}

/// A LongMemEval-shaped haystack of `sessions` sessions of ten turns (a user request, then the
/// assistant's answer of 300–1,000 tokens, five times), each session dated a few days after the
/// last. About one session in four has a fact about the user planted in one of its requests ("My
/// sister Ana moved to Lisbon in March 2019."), with one QA item (category `planted`, evidence the
/// planting turn) and three distractor requests elsewhere sharing its words but not its answer.
/// `haystack(seed, 50)` is a 500-turn, ~130k-token history, the size of a LongMemEval-S instance.
/// The same `(seed, sessions)` always gives the same transcript.
pub fn haystack(seed: u64, sessions: usize) -> Transcript {
    let mut rng = Rng::new(seed ^ 0x4A_57_AC_C0);
    let user = "Sam";
    let turns = sessions * SESSION_TURNS;
    // Slots: the request turns (even ids) that carry a plant or a distractor.
    let mut slot: Vec<Option<String>> = vec![None; turns];
    let mut used = HashSet::new();
    let mut planted = Vec::new();
    for s in 0..sessions {
        if !rng.chance(0.25) {
            continue;
        }
        let at = s * SESSION_TURNS + 2 * rng.below(SESSION_TURNS / 2);
        if slot[at].is_some() {
            continue;
        }
        let Some(f) = make_fact(&mut rng, user, &mut used) else { continue };
        slot[at] = Some(f.plant.clone());
        for d in &f.distractors {
            // A free request turn anywhere (a few tries; a crowded haystack keeps fewer distractors).
            for _ in 0..16 {
                let j = 2 * rng.below(turns / 2);
                if slot[j].is_none() {
                    slot[j] = Some(d.clone());
                    break;
                }
            }
        }
        planted.push((at, f));
    }
    let mut t = Transcript::generated(format!("synth-haystack-{seed}"), Path::new("<synth>"));
    let mut day = 19_358 + rng.below(365) as i64; // 2023-01-01 + up to a year
    for s in 0..sessions {
        let (y, m, d) = civil_from_days(day);
        let date = format!("{y}/{m:02}/{d:02} ({}) {:02}:{:02}", MONTHS[m - 1], rng.range(8, 22), rng.below(60));
        for k in 0..SESSION_TURNS {
            let id = s * SESSION_TURNS + k;
            let text = if k % 2 == 0 {
                let template = rng.pick(REQUESTS);
                let request = fill(&mut rng, template);
                match &slot[id] {
                    Some(p) => format!("{p} Anyway. {request}"),
                    None => request,
                }
            } else {
                let tokens = rng.range(ANSWER_TOKENS.0, ANSWER_TOKENS.1).min(rng.range(ANSWER_TOKENS.0, ANSWER_TOKENS.1));
                answer(&mut rng, tokens)
            };
            let role = if k % 2 == 0 { Role::User } else { Role::Assistant };
            t.turns.push(Turn::new(role, vec![Block::text(text)]).with_timestamp(date.as_str()).with_source_id(format!("session_{}:{k}", s + 1)));
        }
        day += rng.range(1, 9) as i64;
    }
    for (i, f) in planted {
        t.qa.push(QaItem { question: f.question, answer: Some(f.answer), evidence: vec![vec![i]], category: "planted".to_string(), headline: true });
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{Encoding, TokenCounter};

    #[test]
    fn fifty_sessions_are_a_longmemeval_sized_haystack() {
        let t = haystack(1, 50);
        assert_eq!(t.turns().len(), 500);
        let mut c = TokenCounter::new(Encoding::O200kBase, 64);
        let mut total = 0;
        for (i, turn) in t.turns().iter().enumerate() {
            let text = turn.plain_text();
            let n = c.count(&text);
            total += n;
            if i % 2 == 1 {
                assert!((250..=1300).contains(&n), "answer {i}: {n} tokens");
                assert_eq!(turn.role(), Role::Assistant);
            } else {
                assert!(n < 150, "request {i}: {n} tokens");
            }
        }
        assert!((100_000..=160_000).contains(&total), "{total} tokens");
        // Facts are planted in requests, one question each, and the question's evidence states it.
        assert!(t.qa().len() >= 5, "{} questions", t.qa().len());
        for q in t.qa() {
            let at = q.evidence()[0][0];
            assert_eq!(t.turns()[at].role(), Role::User);
            let text = t.turns()[at].plain_text();
            assert!(text.contains(q.answer().unwrap_or("?")), "{text} / {:?}", q.answer());
        }
    }

    #[test]
    fn same_seed_same_haystack() {
        assert_eq!(haystack(5, 12).turns(), haystack(5, 12).turns());
        assert_ne!(haystack(5, 12).turns(), haystack(6, 12).turns());
        assert!(haystack(5, 0).turns().is_empty());
    }
}
