//! Word lists of the hate scorer (`hate`): who a statement is about and what
//! it says of them. General English vocabulary, grouped by role, so a new
//! phrasing of a known idea ("X are a plague", "I feel contempt for X") is
//! scored without listing the sentence.

mod structure;
pub use structure::*;

/// Nouns that name an identity group (protected characteristics), plural and singular.
pub const GROUP_NOUNS: &[&str] = &[
    // religion
    "jews", "jew", "muslims", "muslim", "moslems", "moslem", "christians", "christian",
    "catholics", "catholic", "protestants", "hindus", "hindu", "sikhs", "sikh", "buddhists",
    "buddhist", "atheists", "atheist", "mormons", "mormon", "pagans",
    // race, ethnicity, nationality, origin
    "blacks", "whites", "asians", "asian", "africans", "african", "arabs", "arab", "latinos",
    "latino", "latinas", "latina", "latinx", "hispanics", "hispanic", "mexicans", "mexican",
    "chinese", "indians", "indian", "pakistanis", "pakistani", "somalis", "somali", "nigerians",
    "roma", "romani", "gypsies", "gypsy", "travellers", "aboriginals", "aborigines",
    "natives", "palestinians", "israelis", "iranians", "iraqis", "syrians", "afghans",
    "turks", "turk", "kurds", "kurd", "poles", "romanians", "romanian", "albanians", "albanian",
    "ukrainians", "ukrainian", "russians", "russian", "koreans", "korean", "afghan", "syrian",
    "iraqi", "iranian", "palestinian", "israeli", "jamaican", "haitian", "nigerian",
    "japanese", "vietnamese", "filipinos", "filipino", "jamaicans", "haitians",
    "immigrants", "immigrant", "migrants", "migrant", "refugees", "refugee", "foreigners",
    "foreigner", "asylum", "aliens",
    // gender and sexuality
    "women", "woman", "females", "girls", "gays", "lesbians", "lesbian", "bisexuals",
    "homosexuals", "homosexual", "transgenders", "transsexuals", "transsexual", "lgbt",
    "lgbtq", "lgbtqia", "nonbinary",
    // disability
    "disabled", "handicapped", "autists", "autistics", "amputees", "paraplegics",
    "wheelchair",
    // their places of worship ("torch the mosque")
    "mosque", "mosques", "synagogue", "synagogues", "gurdwara", "gurdwaras", "temple",
    "temples",
];

/// Adjectives that make a group with a following person noun ("gay people",
/// "trans lives", "disabled person"). Alone they describe things ("black dress").
pub const GROUP_ADJECTIVES: &[&str] = &[
    "black", "white", "brown", "asian", "african", "arab", "arabic", "latino", "latina",
    "hispanic", "mexican", "chinese", "indian", "jewish", "muslim", "islamic", "christian",
    "catholic", "hindu", "sikh", "buddhist", "atheist", "gay", "lesbian", "bi", "bisexual",
    "trans", "transgender", "queer", "intersex", "nonbinary", "homosexual", "disabled",
    "handicapped", "autistic", "deaf", "blind", "immigrant", "migrant", "refugee", "foreign",
    "female", "gypsy", "roma", "indigenous", "native", "aboriginal", "mentally",
];

/// Person nouns completing a group adjective.
pub const PERSON_NOUNS: &[&str] = &[
    "people", "peoples", "person", "persons", "folk", "folks", "men", "man", "women", "woman",
    "lives", "life", "kids", "children", "guys", "girls", "boys", "individuals", "community",
    "communities", "population", "immigrants", "immigrant", "refugees", "ones", "citizens",
    "workers", "families", "neighbours", "neighbors", "colleagues", "youth", "humans",
    "couples", "couple", "parents", "students", "teenagers", "adults", "doctors", "teachers",
    "bankers", "owners", "voters", "dealer", "dealers", "family", "boss", "neighbour",
    // body parts in threats ("their trans throats", "that black neck of yours")
    "throats", "throat", "necks", "neck", "bodies", "skulls", "faces",
];

/// Pronouns that refer back to a group named earlier in the text.
pub const PRONOUNS: &[&str] = &[
    "they", "them", "their", "theyre", "theirs", "themselves", "these", "those", "kind",
];

/// Words of knowing and seeing that open a clause of their own with "that":
/// their negation stays outside it ("do people not realise that X are vile").
/// After anything else "that" is a relative pronoun or a demonstrative, or
/// follows a verb of saying whose negation carries ("I never said that ...").
pub const FACTIVE: &[&str] = &[
    "realise", "realize", "realises", "realizes", "recognise", "recognize", "know", "knows",
    "knew", "understand", "understands", "see", "sees", "notice", "clear", "obvious",
    "apparent", "evident", "true", "fact", "sure", "certain", "agree", "admit", "accept",
    "remember", "forget", "prove", "proves", "show", "shows", "learn", "learned",
];

/// Subjects that start a new clause after "so" ("... so we should ...");
/// before anything else "so" is an intensifier ("so vile").
pub const SUBJECTS: &[&str] = &["i", "we", "you", "they", "he", "she", "it", "lets", "people"];

/// Negators: each one flips the polarity of its clause.
pub const NEGATORS: &[&str] = &[
    "not", "never", "no", "nobody", "none", "nothing", "neither", "nor", "dont",
    "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "cant", "cannot", "couldnt",
    "wont", "wouldnt", "shouldnt", "mustnt", "hardly", "less", "opposite",
    // condemnations negate what they condemn ("killing X is wrong")
    "illegal", "wrong", "crime", "unacceptable", "forbidden", "outlawed", "condemn",
    "condemned", "oppose", "opposed",
    // refusals negate what is refused ("I refuse to sit next to X")
    "refuse", "refuses", "refused", "refusing", "reject", "rejects", "rejected", "decline",
    "declines", "declined",
];

/// A negator followed by one of these compares rather than negates
/// ("nothing but vermin", "no better than", "no one else is as vile").
pub const NEGATION_CANCELLERS: &[&str] = &[
    "but", "more", "better", "short", "other", "else", "greater", "worse", "only", "just",
    "wonder", "doubt", "stop", "help", "it", "forget",
];

/// Words that end a clause for polarity counting ("is it not clear that ...").
pub const CLAUSE_BREAKS: &[&str] = &[
    "that", "but", "because", "although", "though", "whereas", "while", "if", "unless",
    "since", "so",
];

/// Verbs and nouns of a feeling held towards someone: the group is their object
/// ("I hate X", "contempt for X"), not their subject ("women hate wrinkles").
pub const AVERSION: &[&str] = &[
    "hate", "hates", "hated", "hating", "hatred", "despise", "despises", "despised",
    "detest", "detests", "detested", "loathe", "loathes", "loathed", "loathing", "abhor",
    "abhors", "contempt", "disdain", "dislike", "dislikes", "resent", "resents", "scorn",
];

/// Negative attributes and feelings; the group may stand anywhere in the sentence.
pub const DEROGATORY: &[&str] = &[
    "disgusting", "disgust", "disgusts", "disgusted", "despicable", "vile", "repugnant",
    "repulsive", "revolting", "sickening", "sicken", "sickens", "nauseating",
    "gross", "hideous", "ugly", "dishonest", "liars", "lying", "thieves", "stupid", "stupidest",
    "dumb", "dumbest", "idiots", "idiotic", "morons", "moronic", "ignorant", "brainless",
    "worthless", "useless", "pathetic", "inferior", "evil", "wicked", "lazy", "filthy",
    "dirty", "smelly", "stinking", "primitive", "backward", "barbaric", "savage", "savages",
    "violent", "dangerous", "criminals", "criminal", "threat", "menace", "burden",
    "worst", "awful", "terrible", "horrible", "hateful", "annoying", "irritating", "annoy",
    "annoys", "pissed", "pissing", "infuriating", "unbearable", "insufferable", "incompetent",
    "failures", "losers", "freaks", "freak", "abnormal", "perverts", "perverted",
    "degenerate", "degenerates", "unnatural", "mistake", "shame", "disgrace", "embarrassment",
    "prick", "pricks", "jerks", "scumbags", "retarded", "deceitful", "untrustworthy",
    "greedy", "arrogant", "cowards", "cowardly", "defective", "damaged", "sneaky",
    "terrorists", "rapists", "paedophiles", "pedophiles", "thugs", "crooks", "scroungers",
    "spongers", "freeloaders", "extremists", "fanatics", "barbarians", "inbred", "diseased",
    "uneducated", "illiterate", "hysterical", "irrational", "weak",
    "mistrust", "distrust", "danger", "worse", "uncivilised", "uncivilized", "cruel",
    "brutal", "sinful", "angry", "anger", "rage", "furious", "livid", "enraged", "seethe",
    "boil", "hostile", "ruin", "ruins", "ruined", "ruining", "swarm", "swarms", "swarming",
    "infest", "infesting", "infested", "invade", "invading", "invaders", "invasion", "breed",
];

/// Dehumanising nouns: a person or group likened to animals, vermin, disease or refuse.
pub const DEHUMANISING: &[&str] = &[
    "vermin", "scum", "trash", "garbage", "rubbish", "filth", "dirt", "refuse", "waste",
    "sewage", "excrement", "rats", "rat", "cockroaches", "cockroach", "roaches", "pests",
    "pest", "parasites", "parasite", "leeches", "maggots", "insects", "insect", "lice",
    "animals", "animal", "beasts", "beast", "apes", "ape", "monkeys", "monkey", "pigs",
    "swine", "dogs", "dog", "pig", "donkeys", "mongrels", "plague", "cancer", "disease", "virus", "infestation",
    "tumour", "tumor", "subhuman", "subhumans", "lesser", "creatures", "objects",
];

/// Where animals are kept: dehumanising with a group in the sentence, no link needed.
pub const ANIMAL_PLACES: &[&str] = &[
    "zoo", "zoos", "cage", "cages", "caged", "leash", "kennel", "kennels", "vet", "landfill",
    "dumpster", "sewer", "sewers", "gutter",
];

/// What links a group to a dehumanising noun ("X are vermin", "like rats").
pub const LINKS: &[&str] = &[
    "are", "is", "r", "be", "being", "been", "was", "were", "am", "im", "youre", "theyre",
    "like", "as", "than", "but", "just", "bunch", "such", "call", "called",
];

/// Violence done to a group or a person (threats and calls for it).
pub const VIOLENT: &[&str] = &[
    "kill", "kills", "killed", "killing", "murder", "murdered", "murdering", "shoot", "shot",
    "stab", "stabbed", "execute", "executed", "executing", "exterminate", "exterminated",
    "extermination", "eradicate", "eradicated", "eliminate", "eliminated", "annihilate",
    "hang", "hanged", "lynch", "lynched", "burn", "burned", "burnt", "gas", "gassed",
    "drown", "drowned", "strangle", "behead", "slaughter", "slaughtered", "massacre",
    "torture", "tortured", "beat", "beaten", "hurt", "harm", "attack", "attacked",
    "punish", "punished", "suffer", "die", "dead", "death", "rape", "raped", "deport",
    "deported", "expel", "expelled", "sterilise", "sterilize", "sterilised", "sterilized",
    "imprison", "imprisoned", "jail", "jailed", "banned", "ban", "throats", "throat",
    "necks", "neck", "destroy", "destroyed", "wipe", "wiped", "purge", "purged", "cull",
    "culled", "bomb", "bombed", "assault", "end", "ending", "execution", "executions",
    "genocide", "lynching", "gassing", "attacking", "attacks",
    "beating", "hurting", "torturing", "raping", "shooting", "stabbing", "snap", "slit",
    "torch", "torched", "firebomb", "firebombed", "sink", "sunk", "bullet", "bullets", "noose",
];

/// Violent words that need an object to be violent ("end ... life", not "end of season").
pub const VIOLENT_OBJECTS: &[(&str, &[&str])] = &[
    ("end", &["life", "lives", "existence", "bloodline"]),
    ("sink", &["them", "it", "boat", "boats", "ship", "ships"]),
    ("ending", &["life", "lives", "existence", "bloodline"]),
];

/// Two- and three-word predicates, matched before single words (negative unless noted).
pub const PHRASES: &[(&str, Polar)] = &[
    ("cant stand", Polar::Aversion),
    ("can not stand", Polar::Aversion),
    ("fed up", Polar::Derogatory),
    ("sick of", Polar::Derogatory),
    ("tired of", Polar::Derogatory),
    ("get rid", Polar::Violent),
    ("got rid", Polar::Violent),
    ("put an end", Polar::Violent),
    ("lock up", Polar::Violent),
    ("locked up", Polar::Violent),
    ("wipe out", Polar::Violent),
    ("wiped out", Polar::Violent),
    ("drive out", Polar::Violent),
    ("driven out", Polar::Violent),
    ("drove out", Polar::Violent),
    ("kick out", Polar::Violent),
    ("kicked out", Polar::Violent),
    ("throw out", Polar::Violent),
    ("thrown out", Polar::Violent),
    ("send back", Polar::Violent),
    ("sent back", Polar::Violent),
    ("piss off", Polar::Derogatory),
    ("pisses me off", Polar::Derogatory),
    ("waste of", Polar::Dehumanising),
    ("no place", Polar::Derogatory),
    ("lift a finger", Polar::Positive),
    ("better off without", Polar::Derogatory),
    ("make me sick", Polar::Derogatory),
    ("makes me sick", Polar::Derogatory),
    ("made me sick", Polar::Derogatory),
    ("make me puke", Polar::Derogatory),
    ("makes me puke", Polar::Derogatory),
];

/// Positive attributes and feelings: a negator turns them into derogation
/// ("not human", "no right to live", "never respect").
pub const POSITIVE: &[&str] = &[
    "love", "loves", "loved", "adore", "adores", "like", "likes", "respect", "respected",
    "admire", "admired", "value", "valued", "valuable", "worth", "worthy", "deserve",
    "deserves", "equal", "equals", "human", "humans", "humanity", "matter",
    "matters", "smart", "intelligent", "clever", "capable", "competent", "attractive",
    "beautiful", "wonderful", "amazing", "great", "good", "brilliant", "heroes", "blessing",
    "honoured", "honored", "honour", "honor", "trust", "trusted", "trustworthy", "honest",
    "compassion", "sympathy", "empathy", "care", "welcome", "welcomed", "right", "rights",
    "belong", "belongs", "protect", "protecting", "protected", "save", "saving", "help",
    "live", "living", "alive", "exist", "accept", "accepted", "tolerate", "deserving",
    "member", "members", "safe", "freedom", "dignity", "nice", "decent",
    "important", "useful", "contribute", "better", "cares", "cared", "caring", "offer",
    "offers", "allow", "allowed", "permit", "permitted", "entitled", "values", "respects",
    "admires", "trusts", "welcomes", "protects",
];

/// How a predicate counts towards a clause's polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polar {
    /// A feeling aimed at an object after it ("I hate X").
    Aversion,
    Derogatory,
    Dehumanising,
    Violent,
    Positive,
    /// Contact or association (`CONTACT`): positive, with the group as its object.
    Contact,
}

impl Polar {
    /// Whether the predicate is negative on its own (not praise or contact).
    pub fn is_negative(self) -> bool {
        !matches!(self, Polar::Positive | Polar::Contact)
    }
}

/// Insults aimed at a person: blocked as brand policy, whoever they are aimed at.
pub const INSULT_NOUNS: &[&str] = &[
    "idiot", "idiots", "moron", "morons", "imbecile", "imbeciles", "cretin", "cretins",
    "loser", "losers", "dimwit", "halfwit", "nitwit", "numbskull", "dunce", "dumbo",
    "scumbag", "scumbags", "lowlife", "dipstick", "bonehead", "knucklehead", "airhead",
    "pillock", "plonker", "muppet", "dickwad", "degenerate", "freak", "creep", "jerk",
];

/// Insulting adjectives, blocked only when aimed at the reader ("you stupid ...").
pub const INSULT_ADJECTIVES: &[&str] = &[
    "stupid", "dumb", "ugly", "pathetic", "worthless", "useless", "fat", "brainless",
    "disgusting", "ignorant", "retarded", "idiotic", "moronic", "clueless", "fool", "foolish",
    "lame", "trash", "garbage", "scum", "filth", "vile", "repulsive", "hideous",
];

/// Words for the reader or a named person that an insult is aimed at.
pub const ADDRESSEES: &[&str] = &[
    "you", "youre", "ur", "u", "ya", "yourself", "yall", "thou",
];

/// Short, common words, so text with the spaces deleted can be cut back
/// into words ("ihatewomen" -> "i hate women") alongside every lexicon word.
pub const FUNCTION_WORDS: &[&str] = &[
    "i", "a", "an", "the", "we", "you", "he", "she", "it", "they", "them", "me", "us", "my",
    "your", "our", "his", "her", "their", "is", "are", "am", "was", "were", "be", "been",
    "so", "very", "much", "just", "all", "to", "of", "in", "on", "for", "and", "or", "at",
    "will", "should", "must", "would", "could", "can", "do", "does", "have", "has", "had",
    "too", "really", "absolute", "absolutely", "totally", "such", "like", "these", "those",
    "this", "that", "with", "by", "as", "any", "every", "other", "what", "who", "why", "how",
    "going", "gonna", "want", "wanna", "ought", "off", "up", "out", "more", "most", "than",
    "im", "ill", "youre", "theyre", "next", "see", "get", "go", "make", "feel", "think",
    "believe", "nothing", "but", "common", "planet", "world", "country", "around", "here",
    "behaviour", "behavior", "typical", "deserve", "many", "massive", "total", "complete",
];

/// Slurs and insults that are also ordinary words, with the words of their
/// ordinary sense: in a sentence with one of those, the word is not a slur
/// ("the dyke held back the flood", "a queer feeling", "my Labrador bitch").
pub const HOMONYMS: &[(&[&str], &[&str])] = &[
    (
        &["dyke", "dykes", "dyked"],
        &[
            "road", "roads", "trail", "trails", "lane", "street", "path", "walk", "walked",
            "water", "sea", "flood", "floods", "flooding", "embankment", "embankments", "wall",
            "walls", "marsh", "marshland", "river", "rivers", "beach", "built", "building",
            "dam", "dams", "levee", "canal", "dutch", "council", "pasture", "coast", "tide",
            "park", "station", "village", "farm", "fields", "drainage",
        ],
    ),
    (
        &["queer"],
        &[
            "feeling", "feel", "felt", "notion", "notions", "odd", "strange", "seemed", "seems",
            "seem", "rather", "slightly", "bit", "how", "thing", "idea", "look", "looked",
            "sound", "sounded", "process", "worked", "weird", "fish", "sort",
        ],
    ),
    (
        &["fag", "fags"],
        &[
            "cigarette", "cigarettes", "smoke", "smoked", "smoking", "smokes", "packet", "pack",
            "lighter", "lungs", "mouth", "ashtray", "tobacco", "puff", "lit", "light",
        ],
    ),
    (
        &["faggot", "faggots"],
        &[
            "meatball", "meatballs", "dinner", "lunch", "butcher", "cooked", "cook", "ate",
            "eat", "eaten", "delicious", "pan", "fried", "gravy", "recipe", "sticks", "stick",
            "bundle", "fuel", "firewood", "wood", "bound", "onion", "pork",
        ],
    ),
    (
        &["bitch", "bitches"],
        &[
            "dog", "dogs", "puppy", "puppies", "canine", "canines", "vet", "barking", "bark",
            "labrador", "breed", "breeding", "breeder", "litter", "kennel", "spaniel",
            "terrier", "collie", "whelp", "whelped", "greyhound", "retriever", "shepherd",
        ],
    ),
    (
        &["hoe", "hoes", "hoeing"],
        &[
            "garden", "gardening", "tool", "tools", "weeds", "weeding", "weed", "field",
            "shovel", "rake", "spade", "shed", "soil", "patch", "vegetable", "vegetables", "dig",
            "hoeing",
        ],
    ),
];

/// Common words a one-letter misspelling of a lexicon word would hit ("best"
/// is not "beast", "back" not "black"): never read as a misspelling.
pub const COMMON_WORDS: &[&str] = &[
    "best", "back", "rash", "bet", "bat", "hat", "heat", "pet", "pets", "dot", "cat", "rag",
    "rage", "bast", "mess", "kin", "kind", "lack", "lick", "deal", "dear", "dead", "hang",
    "rape", "tape", "tash", "bash", "fries", "hopes", "home", "homes", "wine", "went", "want",
    "ward", "wood", "woods", "word", "words", "form", "forms", "from", "fro", "bead", "bred",
    "brad", "lice", "vie", "vile", "veil", "evil", "live", "lives", "cancel", "cancels",
    "care", "cares", "nature", "mature", "murderer", "ended", "sand", "sane", "stay", "niger",
    "cnut", "sith", "bread", "breads", "brand", "bred", "run", "runs", "running",
];
