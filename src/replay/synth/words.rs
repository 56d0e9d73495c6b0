//! The generators' word lists: names, places, small talk, and the vocabulary of the generated Rust
//! crate. Speakers' names ([`FIRST_NAMES`]) and third persons ([`WOMEN`], [`MEN`]) do not overlap.

pub(super) const MONTHS: &[&str] = &["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

pub(super) const FIRST_NAMES: &[&str] = &[
    "Caroline", "Melanie", "Joanna", "Nate", "Tim", "John", "Maria", "Gina", "Jon", "Audrey", "Andrew", "James", "Deborah", "Evan", "Sam", "Calvin", "Dave",
    "Priya", "Kenji", "Lucia", "Omar", "Hannah", "Felix", "Ingrid",
];

/// Third persons (never speakers: no overlap with [`FIRST_NAMES`]).
pub(super) const WOMEN: &[&str] = &[
    "Ana", "Clara", "Elif", "Farah", "Iris", "Lena", "Nadia", "Paula", "Rosa", "Tara", "Vera", "Ximena", "Zoe", "Amira", "Chloe", "Esme", "Greta", "Isla",
    "Keiko", "Mila", "Olga", "Rania", "Ulla", "Wanda", "Yara",
];

/// Third persons (never speakers: no overlap with [`FIRST_NAMES`]).
pub(super) const MEN: &[&str] = &[
    "Ben", "Diego", "George", "Hugo", "Jamal", "Kofi", "Marco", "Oscar", "Quentin", "Stefan", "Umar", "Wes", "Yusuf", "Bruno", "Dmitri", "Finn", "Hamid",
    "Joel", "Luis", "Nico", "Pedro", "Sven", "Tomas", "Viktor", "Zane",
];

pub(super) const RELATIONS_F: &[&str] = &["sister", "aunt", "niece", "grandmother"];
pub(super) const RELATIONS_M: &[&str] = &["brother", "uncle", "nephew", "grandfather"];
pub(super) const RELATIONS_ANY: &[&str] = &["cousin", "best friend", "neighbour", "old roommate", "colleague", "childhood friend"];

pub(super) const CITIES: &[&str] = &[
    "Lisbon",
    "Porto",
    "Valencia",
    "Lyon",
    "Ghent",
    "Utrecht",
    "Leipzig",
    "Krakow",
    "Tallinn",
    "Bergen",
    "Galway",
    "Edinburgh",
    "Bologna",
    "Seville",
    "Vienna",
    "Ljubljana",
    "Montreal",
    "Halifax",
    "Portland",
    "Austin",
    "Denver",
    "Tucson",
    "Melbourne",
    "Hobart",
    "Wellington",
    "Osaka",
    "Busan",
    "Taipei",
    "Hanoi",
    "Nairobi",
    "Accra",
    "Cape Town",
    "Santiago",
    "Cordoba",
    "Medellin",
    "Oaxaca",
    "Reykjavik",
    "Tromso",
    "Marseille",
    "Antwerp",
];

pub(super) const PLACES: &[&str] = &[
    "cabin",
    "studio",
    "office",
    "parents' house",
    "lake house",
    "beach flat",
    "workshop",
    "allotment shed",
    "garage",
    "bakery",
    "climbing gym",
    "boat",
    "shared flat",
    "caravan",
    "rehearsal room",
];

pub(super) const PASSWORD_WORDS: &[&str] = &[
    "tulip", "maple", "heron", "cobalt", "juniper", "saffron", "otter", "lantern", "pebble", "willow", "comet", "fennel", "marble", "thistle", "walnut",
    "puffin", "clover", "ember", "harbor", "quartz",
];

pub(super) const ANIMALS: &[&str] = &["dog", "cat", "rabbit", "parrot", "tortoise", "hamster", "ferret", "goldfish", "guinea pig", "horse", "gecko", "budgie"];

pub(super) const PET_NAMES: &[&str] = &[
    "Biscuit",
    "Pepper",
    "Mochi",
    "Luna",
    "Pickles",
    "Waffles",
    "Juniper",
    "Ziggy",
    "Noodle",
    "Clementine",
    "Basil",
    "Pretzel",
    "Olive",
    "Tofu",
    "Maple",
    "Gizmo",
    "Dumpling",
    "Sprout",
    "Nugget",
    "Cricket",
];

pub(super) const CODE_ADJ: &[&str] = &[
    "Amber", "Blue", "Silent", "Copper", "Northern", "Velvet", "Iron", "Crimson", "Golden", "Hidden", "Bright", "Lunar", "Coral", "Rapid", "Quiet", "Emerald",
    "Wild", "Polar", "Scarlet", "Granite",
];

pub(super) const CODE_NOUN: &[&str] = &[
    "Falcon", "Heron", "Harbor", "Orchard", "Beacon", "Meadow", "Summit", "Compass", "Lantern", "Glacier", "Canyon", "Prairie", "Atlas", "Ember", "Tide",
    "Kestrel", "Juniper", "Quarry", "Delta", "Aurora",
];

pub(super) const FAVOURITES: &[(&str, &[&str])] = &[
    ("book", &["Piranesi", "Middlemarch", "The Left Hand of Darkness", "The Remains of the Day", "Circe", "Stoner", "Pachinko"]),
    ("film", &["Spirited Away", "Paddington 2", "Arrival", "The Grand Budapest Hotel", "Amelie", "Heat", "Moonlight"]),
    ("restaurant", &["Casa Romero", "The Blue Lantern", "Little Saigon Kitchen", "Osteria Nonna", "Pho Hanoi", "Tandoor House"]),
    ("band", &["Khruangbin", "Fleetwood Mac", "Radiohead", "The National", "Bombay Bicycle Club", "Phoenix"]),
    ("board game", &["Wingspan", "Catan", "Carcassonne", "Azul", "Ticket to Ride", "Codenames", "Terraforming Mars"]),
    ("hiking trail", &["the Ridge Loop", "Eagle Falls Trail", "the Old Quarry Path", "Cedar Creek Trail", "the Coastal Walk"]),
    ("coffee shop", &["Bean There", "The Daily Grind", "Kaffe Hygge", "Second Cup Corner", "Moka House", "Drip Lab"]),
    ("podcast", &["The Memory Palace", "99% Invisible", "Radiolab", "Song Exploder", "No Such Thing As A Fish"]),
];

pub(super) const ITEMS: &[&str] = &[
    "camping stove",
    "bike pump",
    "cordless drill",
    "tent",
    "guitar",
    "waffle iron",
    "projector",
    "snowboard",
    "sewing machine",
    "ladder",
    "pasta maker",
    "telescope",
    "kayak paddle",
    "record player",
    "pressure washer",
];

pub(super) const APPOINTMENTS: &[&str] = &["dentist", "eye doctor", "physio", "vet", "haircut", "car service", "tax advisor", "dermatologist", "piano tuner"];

pub(super) const ANSWER_OPENERS: &[&str] = &[
    "Pretty good, thanks!",
    "Not bad at all.",
    "Honestly, a bit hectic.",
    "Oh, it was lovely.",
    "Yes! Finally.",
    "Not yet, but it's on my list.",
    "Ha, kind of.",
    "Good question.",
    "Mostly quiet, which I needed.",
];

pub(super) const REACTIONS: &[&str] = &[
    "That sounds amazing!",
    "Haha, classic.",
    "Oh no, that's rough.",
    "I love that.",
    "Same here, honestly.",
    "Fair enough.",
    "No way!",
    "That's so nice to hear.",
    "Ooh, tell me more.",
    "Oh, interesting.",
];

pub(super) const DAYPARTS: &[&str] = &["morning", "afternoon", "evening", "whole weekend", "day"];

pub(super) const ACTIVITIES: &[&str] = &[
    "reorganising my bookshelf",
    "at the farmers' market",
    "trying a new curry recipe",
    "walking by the river",
    "watching old sci-fi films",
    "fixing my bike",
    "repotting plants",
    "at a friend's birthday party",
    "catching up on emails",
    "at the climbing gym",
    "doing a jigsaw puzzle",
    "at a pottery class",
];

pub(super) const WEATHER: &[&str] = &["It was pouring", "It was sunny", "Super windy", "Freezing", "Really humid", "Grey and drizzly"];

pub(super) const WEATHER_DID: &[&str] = &[
    "stayed in with a book",
    "went for a run anyway",
    "made soup",
    "took the long way home",
    "finally cleaned the balcony",
    "had a picnic in the park",
    "baked bread",
];

pub(super) const SHOWS: &[&str] = &[
    "that detective series",
    "The Long Road",
    "Salt and Stone",
    "the baking show",
    "a documentary about octopuses",
    "Night Harbor",
    "the new space drama",
    "that cooking competition",
];

pub(super) const OPINIONS: &[&str] = &["amazing", "a bit disappointing", "so good", "weird but fun", "surprisingly great", "fine, I guess"];

pub(super) const FOODS: &[&str] = &["lasagna", "tacos", "a big salad", "ramen", "homemade pizza", "lentil soup", "dumplings", "grilled fish", "pancakes"];

pub(super) const HABITS: &[&str] = &[
    "drink more water",
    "go to bed earlier",
    "call my parents",
    "read before bed",
    "cook at home",
    "stretch in the morning",
    "walk to work",
    "spend less time on my phone",
];

pub(super) const PLANS: &[&str] = &[
    "taking a weekend trip",
    "signing up for a dance class",
    "painting the living room",
    "learning some Italian",
    "volunteering at the food bank",
    "joining a running club",
    "visiting my grandparents",
];

pub(super) const CRATES: &[&str] = &["tidepool", "quillmark", "brambleway", "ironleaf", "copperline", "saltmarsh", "lanternfish", "driftwood"];

pub(super) const MODULE_NAMES: &[&str] = &[
    "parser",
    "lexer",
    "scheduler",
    "cache",
    "auth",
    "router",
    "storage",
    "metrics",
    "retry",
    "config",
    "codec",
    "session",
    "index",
    "planner",
    "shard",
    "ledger",
    "queue",
    "webhook",
    "throttle",
    "snapshot",
    "compactor",
    "gateway",
    "registry",
    "telemetry",
];

pub(super) const MODULE_DOCS: &[&str] = &[
    "bounded queues and back-pressure",
    "leases and their renewal",
    "the on-disk format and its checksums",
    "request routing across shards",
    "retries with jittered back-off",
    "compaction of old segments",
];

pub(super) const NOUNS: &[&str] = &[
    "header",
    "frame",
    "token",
    "batch",
    "entry",
    "segment",
    "lease",
    "cursor",
    "chunk",
    "window",
    "record",
    "checkpoint",
    "manifest",
    "shard",
    "span",
    "buffer",
    "epoch",
];

pub(super) const VERBS: &[&str] = &[
    "parse", "load", "flush", "resolve", "encode", "decode", "merge", "split", "validate", "refresh", "compact", "evict", "schedule", "drain", "apply",
    "rollback", "emit", "record", "fetch",
];

pub(super) const CONST_DOCS: &[&str] = &[
    "Upper bound enforced on every write.",
    "Chosen from production traces; see the design doc.",
    "Must match the value the deploy scripts pass in.",
    "Lower values make the integration tests flaky.",
];

pub(super) const ERR_VARIANTS: &[(&str, &str)] = &[
    ("Overflow", "The input exceeded a configured limit."),
    ("Stale", "The state was read after it expired."),
    ("Closed", "The handle was closed."),
    ("Corrupt", "The data failed its checksum."),
];

pub(super) const STRUCT_DOCS: &[&str] =
    &["Owned by one worker; cheap to clone.", "Shared state, guarded by the caller.", "Configuration read at start-up.", "One entry per live lease."];

pub(super) const FN_DOCS: &[&str] = &[
    "Processes one input and returns how many bytes were consumed.",
    "Idempotent: calling it twice has no further effect.",
    "Fails with `Overflow` when the input is over the limit.",
    "Called from the scheduler on every tick.",
];

pub(super) const TEST_CASES: &[&str] = &[
    "handles_empty",
    "rejects_overflow",
    "round_trips",
    "respects_limit",
    "is_idempotent",
    "after_restart",
    "with_large_input",
    "under_contention",
    "keeps_order",
];

pub(super) const CLIPPY: &[(&str, &str)] = &[
    ("needless_range_loop", "the loop variable `i` is only used to index `input`"),
    ("redundant_clone", "redundant clone"),
    ("manual_saturating_arithmetic", "manual saturating arithmetic"),
    ("cast_possible_truncation", "casting `u64` to `usize` may truncate the value on targets with 32-bit wide pointers"),
    ("too_many_lines", "this function has too many lines (112/100)"),
];

pub(super) const BACKTRACE: &[&str] = &[
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
