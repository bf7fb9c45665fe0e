//! The embedded screen's lexicons, in the pattern syntax of `matcher`.
//!
//! Severities follow the 0-7 scale of Azure AI Content Safety: single words are
//! mostly kept at 3 or below so that only explicit terms, or context (a threat
//! aimed at a person, a slur, a dehumanizing claim about a group), reach the
//! default threshold of 4. Idioms mark marketing phrases ("killer deals", "to
//! die for", "shoot us an email") whose tokens then score nothing.

use crate::screen::HarmCategory::{self, Hate, SelfHarm, Sexual, Violence};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Severity `base`; a `directed` term gains 3 when a person or group is
    /// within three tokens in the same sentence, and 1 more with stated intent.
    Harm {
        category: HarmCategory,
        base: u8,
        directed: bool,
    },
    Profanity {
        mild: bool,
    },
    /// Profanity as an intensifier or exclamation ("fucking", "shit"): strong
    /// when the sentence names a person, the reader or a group, mild when it
    /// is aimed at things ("these fucking sirens").
    Expletive,
    /// `citable` claims pass when a citation is in the same sentence.
    Claim {
        citable: bool,
    },
    Injection,
    /// A credential request or account-verification lure (not after a negator:
    /// "never share your password" is advice).
    Phishing,
    /// Harm and profanity matched inside an idiom are ignored.
    Idiom,
}

/// Groups protected from hate speech; also targets of directed threats.
pub const GROUPS: &[&str] = &[
    "jews",
    "jew",
    "muslims",
    "muslim",
    "christians",
    "catholics",
    "hindus",
    "sikhs",
    "buddhists",
    "atheists",
    "blacks",
    "whites",
    "asians",
    "mexicans",
    "latinos",
    "hispanics",
    "arabs",
    "africans",
    "immigrants",
    "migrants",
    "refugees",
    "foreigners",
    "gays",
    "lesbians",
    "homosexuals",
    "transgenders",
    "trans",
    "women",
    "gypsies",
    "indians",
    "chinese",
    "disabled",
];

/// Words naming the person a threat is aimed at.
pub const TARGETS: &[&str] = &[
    "you",
    "u",
    "ya",
    "yall",
    "youre",
    "youll",
    "youd",
    "yourself",
    "yourselves",
    "him",
    "her",
    "them",
    "thee",
    "everyone",
    "everybody",
    "himself",
    "herself",
    "themselves",
];

/// Possessives that, before a `VICTIMS` noun, aim a threat at someone's family or place.
pub const POSSESSIVES: &[&str] = &["your", "ur", "yer", "his", "her", "their", "thy"];

/// Who and what a threat is made against, after a possessive ("bomb your house").
pub const VICTIMS: &[&str] = &[
    "family",
    "families",
    "kids",
    "kid",
    "children",
    "child",
    "son",
    "sons",
    "daughter",
    "daughters",
    "wife",
    "husband",
    "mother",
    "mom",
    "mum",
    "father",
    "dad",
    "parents",
    "brother",
    "sister",
    "baby",
    "babies",
    "friends",
    "friend",
    "girlfriend",
    "boyfriend",
    "partner",
    "grandma",
    "grandmother",
    "grandpa",
    "pets",
    "pet",
    "dog",
    "cat",
    "house",
    "home",
    "car",
    "school",
    "office",
    "shop",
    "store",
    "church",
    "mosque",
    "synagogue",
    "temple",
    "workplace",
    "building",
    "apartment",
    "flat",
    "street",
    "town",
    "neighbourhood",
    "neighborhood",
    "face",
    "head",
    "throat",
    "neck",
    "skull",
    "legs",
    "body",
    "ass",
];

/// Words of stated intent before a threat ("i will", "gonna").
pub const INTENT: &[&str] = &[
    "will", "ill", "gonna", "going", "wanna", "want", "shall", "gon", "finna", "gotta", "must",
];

pub const MACROS: &[(&str, &[&str])] = &[("group", GROUPS), ("target", TARGETS)];

const fn harm(category: HarmCategory, base: u8) -> Effect {
    Effect::Harm {
        category,
        base,
        directed: false,
    }
}

const fn threat(category: HarmCategory, base: u8) -> Effect {
    Effect::Harm {
        category,
        base,
        directed: true,
    }
}

const STRONG: Effect = Effect::Profanity { mild: false };
const MILD: Effect = Effect::Profanity { mild: true };
const EXPLETIVE: Effect = Effect::Expletive;
const CLAIM: Effect = Effect::Claim { citable: false };
const CITABLE: Effect = Effect::Claim { citable: true };
const INJECTION: Effect = Effect::Injection;
const PHISHING: Effect = Effect::Phishing;
const IDIOM: Effect = Effect::Idiom;

#[rustfmt::skip]
pub const ENTRIES: &[(&str, Effect)] = &[
    // --- violence
    ("kill|kills|killed|killing", threat(Violence, 3)),
    ("murder|murders|murdered|murdering", threat(Violence, 3)),
    ("shoot|shoots|shooting", threat(Violence, 2)),
    ("shot|shots|gunfire", harm(Violence, 2)),
    ("stab|stabs|stabbed|stabbing", threat(Violence, 3)),
    ("strangle|strangles|strangled|strangling", threat(Violence, 3)),
    ("choke|chokes|choked|choking", threat(Violence, 2)),
    ("punch|punches|punched", threat(Violence, 2)),
    ("smash|smashes|smashed|batter|battered|bash|bashed|slap|slapped", threat(Violence, 2)),
    ("smash hit|hits|success|successes", IDIOM),
    ("hurt|hurts|burn|burns|torch|torches", threat(Violence, 2)),
    ("blow|blowing up", threat(Violence, 3)),
    ("die|dies|died|dying", threat(Violence, 2)),
    ("dead", threat(Violence, 1)),
    ("bomb|bombs|bombed|bombing", threat(Violence, 3)),
    ("torture|tortured|torturing", threat(Violence, 3)),
    ("slaughter|slaughtered|massacre|massacred", threat(Violence, 3)),
    ("behead|beheaded|beheading|decapitate|decapitated", threat(Violence, 4)),
    ("lynch|lynched|lynching", threat(Violence, 2)),
    // Rape aimed at someone is a threat; named alone (reporting, prevention) it is not.
    ("rape|rapes|raped|raping", threat(Violence, 3)),
    ("rapist|rapists", harm(Violence, 5)),
    ("gun|guns|knife|knives|rifle|weapon|weapons|killer|killers|deadly|lethal", harm(Violence, 1)),
    ("terrorist|terrorists|terrorism", harm(Violence, 3)),
    ("genocide", harm(Violence, 5)),
    ("ethnic cleansing", harm(Violence, 5)),
    ("shoot|shooting up the? school|schools|mall|church|synagogue|mosque|office|concert|store", harm(Violence, 7)),
    ("mass shooting|shootings|murder|murders", harm(Violence, 6)),
    ("beat|bash $target up", harm(Violence, 5)),
    ("blow $target up", harm(Violence, 6)),
    ("gun $target down", harm(Violence, 6)),
    ("watch your back", harm(Violence, 4)),
    ("i|we know|found where you live", harm(Violence, 5)),
    ("death to $group|america|israel|infidels", harm(Violence, 5)),
    // --- self-harm
    ("suicide|suicidal", harm(SelfHarm, 4)),
    ("commit|committing|committed suicide", harm(SelfHarm, 6)),
    ("kill|killing|hang|hanging|shoot myself|yourself|themselves|himself|herself", harm(SelfHarm, 6)),
    ("hurt|hurting|cut|cutting|harm|harming|starve|starving|burn|burning myself", harm(SelfHarm, 5)),
    // Encouragement aimed at the reader.
    ("kill|hurt|cut|harm|starve|hang|drown|burn|unalive|off|shoot|poison|stab yourself|urself|yourselves|yoself", harm(SelfHarm, 7)),
    ("unalive|unalived|unaliving", harm(SelfHarm, 5)),
    ("go die|unalive", harm(SelfHarm, 6)),
    ("drink|swallow bleach", harm(SelfHarm, 7)),
    ("jump off a|the bridge|building|roof|cliff", harm(SelfHarm, 6)),
    ("how to|ways to|best way to kill|hang|cut|hurt|harm|unalive myself|yourself|oneself", harm(SelfHarm, 7)),
    ("nobody|no one would miss you", harm(SelfHarm, 6)),
    ("world|everyone would be better off without you", harm(SelfHarm, 6)),
    ("kys", harm(SelfHarm, 6)),
    ("end|ending my|your own? life", harm(SelfHarm, 6)),
    ("take|taking my|your own life", harm(SelfHarm, 6)),
    ("i|we want|wanna to? die", harm(SelfHarm, 5)),
    ("wish i was|were dead", harm(SelfHarm, 5)),
    ("end it all", harm(SelfHarm, 5)),
    ("self harm|injury", harm(SelfHarm, 4)),
    ("selfharm|selfinjury", harm(SelfHarm, 4)),
    ("slit|slitting my|your|their wrists|wrist|throat", harm(SelfHarm, 7)),
    ("proana|promia|thinspo|thinspiration", harm(SelfHarm, 5)),
    ("pro ana|mia", harm(SelfHarm, 5)),
    ("overdose|overdosed|overdosing", harm(SelfHarm, 3)),
    // --- sexual
    ("sexy|nude|lingerie", harm(Sexual, 1)),
    ("sexual|sexually|naked|escort|escorts|dick|dicks", harm(Sexual, 2)),
    ("sex|erotic|onlyfans|hookup|hookups", harm(Sexual, 4)),
    ("nude|naked pics|pictures|photos|photo|selfies|girls|women|men|videos|video|chat|cam|models", harm(Sexual, 5)),
    ("escort|escorts service|services|girls|agency", harm(Sexual, 5)),
    ("sex education|ed|discrimination|offender|offenders|trafficking|abuse|abusers|workers|worker|chromosomes|hormones|differences|pistols", IDIOM),
    ("cock a doodle", IDIOM),
    ("cut|cutting yourself|yourselves a|an|some|the", IDIOM),
    ("nudity|erotic|erotica|fetish|fetishes|stripper|strippers|striptease|prostitute|prostitutes|hooker|hookers|penis|vagina|clitoris|genitals|genitalia|boobs|boobies|tits|titties|nsfw|onlyfans|vibrator|vibrators", harm(Sexual, 3)),
    ("sex toy|toys", harm(Sexual, 3)),
    ("nudes|horny|anal|cock|cocks|pussy|pussies|bdsm|xxx", harm(Sexual, 4)),
    ("have|having|had sex", harm(Sexual, 4)),
    ("porn|porno|pornography|pornographic|orgasm|orgasms|masturbate|masturbating|masturbation|cum|cumshot|dildo|dildos|milf|hentai", harm(Sexual, 5)),
    ("sex tape|tapes|video|videos|chat|cam|cams", harm(Sexual, 5)),
    ("send|sending nudes|nude", harm(Sexual, 5)),
    ("blowjob|blowjobs|handjob|handjobs|rimjob", harm(Sexual, 6)),
    ("blow|hand job|jobs", harm(Sexual, 6)),
    ("rape|rapes|raped|raping", threat(Sexual, 3)),
    ("rapist|rapists|incest|molest|molested|molesting|molestation|molester|jailbait|bestiality", harm(Sexual, 6)),
    ("pedophile|pedophiles|paedophile|pedo|pedophilia", harm(Sexual, 7)),
    ("child porn|pornography", harm(Sexual, 7)),
    ("underage sex", harm(Sexual, 7)),
    // --- hate
    ("hate|hates|hated|hating|racist|racism", harm(Hate, 1)),
    ("nigger|niggers|niggaz|sandnigger", harm(Hate, 7)),
    ("nigga|niggas|faggot|faggots|fag|fags|kike|kikes|spic|spics|chink|chinks|wetback|wetbacks|gook|gooks|raghead|ragheads|towelhead|towelheads|beaner|beaners|zipperhead|untermensch", harm(Hate, 6)),
    ("coon|coons|paki|pakis|tranny|trannies", harm(Hate, 5)),
    ("dyke|dykes|retard|retards|retarded|subhuman|subhumans", harm(Hate, 4)),
    ("shemale|shemales|jihadi|jihadis|mong|mongs|mongoloid|mongoloids|cripple|cripples|rapefugee|rapefugees|trannie|ladyboy|ladyboys|kaffir|kaffirs|golliwog|golliwogs|pikey|pikeys|gyppo|gyppos|poofter|poofters|poof|poofs|batty|towelheads|muzzie|muzzies|wog|wogs|nignog|sambo|darkie|darkies|negro|negroes|halfbreed|halfbreeds|zionazi|islamonazi|feminazi|feminazis|libtard|libtards", harm(Hate, 5)),
    ("queer|queers|homo|homos|lesbo|lesbos|lezzer|lezza", harm(Hate, 4)),
    ("queer people|person|persons|folk|folks|community|communities|youth|culture|history|studies|theory|pride|film|art|artists|owned|friendly|joy", IDIOM),
    // "$group are vermin" and the like: `hate`, which reads negation.
    ("i|we hate|despise|detest all? the? $group", harm(Hate, 5)),
    ("$group should|must|deserve|deserves|need|needs to? be? die|burn|hang|suffer|rot|killed|shot|exterminated|gassed|deported|eliminated", harm(Hate, 7)),
    ("kill|exterminate|gas|eradicate|eliminate|deport all? the? $group", harm(Hate, 7)),
    ("go back to your|their own? country|countries", harm(Hate, 4)),
    ("white power|pride|supremacy|supremacist|supremacists", harm(Hate, 6)),
    ("heil hitler", harm(Hate, 6)),
    ("sieg heil", harm(Hate, 6)),
    ("1488", harm(Hate, 6)),
    ("death to $group|infidels", harm(Hate, 6)),
    // --- profanity
    ("fvck|fvcking|fvcked|fvk|phuq|fcuking|fukc|sh1t", EXPLETIVE),
    ("cvnt|cvnts|biatch|beeyotch", STRONG),
    ("fuck|fucks|fucked|fucking|fuckin|fuckn|fck|fcking|fcuk|fuk|fuking|fukin|fuq|phuck|phuk|wtf|fubar", EXPLETIVE),
    ("fucker|fuckers|fuckface|fuckhead|motherfucker|motherfuckers|motherfucking|mofo|stfu|gtfo", STRONG),
    ("shit|shits|shitty|shite|shitting|bullshit|horseshit|batshit|shitstorm", EXPLETIVE),
    ("shithead|shitheads|dipshit", STRONG),
    ("bitch|bitches|bitching|bitchy|sonofabitch|cunt|cunts|asshole|assholes|arsehole|arseholes|asshat|dumbass|jackass|bastard|bastards", STRONG),
    ("hoe|hoes", STRONG),
    ("twat|twats|wanker|wankers|wank|tosser|slut|sluts|slutty|whore|whores|cocksucker|cocksuckers|dickhead|dickheads|douchebag|douchebags", STRONG),
    ("damn|damned|dammit|damnit|goddamn|goddamnit|crap|crappy|hell|bloody|bugger|piss|pissed|pissing|arse|ass|asses|butthole|dick|dicks|prick|pricks|douche|badass|sucks", MILD),
    // --- unsubstantiated claims
    ("guaranteed|guarantee|guarantees cure|cures|results|returns|income|profit|profits|earnings|winnings", CLAIM),
    ("guaranteed|guarantee weight|fat loss", CLAIM),
    ("guaranteed to cure|heal|win|earn|work", CLAIM),
    ("cure|cures|cured|curing cancer|diabetes|arthritis|covid|aids|hiv|alzheimers|dementia|depression|anxiety|obesity|baldness|acne|autism|everything|anything", CLAIM),
    ("miracle|miracles|miraculous|panacea|cureall", CLAIM),
    ("cure all", CLAIM),
    ("risk free returns|return|investment|investments|income|profit|profits|gains", CLAIM),
    ("riskfree returns|return|investment|investments|income|profit|profits|gains", CLAIM),
    ("no|zero|without risk|risks", CLAIM),
    ("norisk|zerorisk", CLAIM),
    ("no side effects", CLAIM),
    ("100 percent? guaranteed|guarantee|effective|proven|cure", CLAIM),
    ("lose # pounds|lbs|lb|kg|kgs|kilos|kilograms|stone|inches|dress", CLAIM),
    ("double|triple|quadruple your money|investment|income|savings", CLAIM),
    ("get rich quick|fast", CLAIM),
    ("instant|overnight|permanent results", CLAIM),
    ("clinically|scientifically|medically|dermatologically|laboratory|lab proven|tested|shown|backed", CITABLE),
    ("doctor|doctors|dermatologist|dermatologists|physician|physicians recommended|approved|recommend", CITABLE),
    ("fda approved|cleared", CITABLE),
    ("studies|research|science|scientists show|shows|prove|proves|proven|confirm|confirms", CITABLE),
    ("proven to", CITABLE),
    // --- prompt-injection and model remnants
    ("ignore|disregard|forget|override all? the? previous|prior|above|earlier|preceding|former|original|system instructions|instruction|prompts|prompt|directions|rules|messages|context", INJECTION),
    ("ignore|disregard|forget your|my|these instructions|instruction|programming|rules|guidelines|prompt", INJECTION),
    ("as an ai", INJECTION),
    ("as a large? language model", INJECTION),
    ("i cannot|cant help|assist with", INJECTION),
    ("i cannot|cant fulfill|comply|provide|create|generate|write", INJECTION),
    ("i am|im unable to help|assist|comply|fulfill|provide|create|generate|write", INJECTION),
    ("system prompt", INJECTION),
    ("developer mode", INJECTION),
    ("you are chatgpt|gpt|claude|llama|gemini|copilot", INJECTION),
    ("you are an ai|chatbot", INJECTION),
    ("you are a helpful assistant", INJECTION),
    ("my training data", INJECTION),
    ("knowledge cutoff", INJECTION),
    ("as of my last|latest knowledge|training", INJECTION),
    ("here is|heres the|your|a rewritten|revised|personalized|requested|draft? email|emails|draft", INJECTION),
    // --- phishing: credential requests and account lures
    ("send|enter|provide|share|give|submit|type|confirm|update|verify|tell|text|email|reply|input|retype us|me? your|the bank|online? password|passwords|pin|passcode|passcodes|credentials|otp|cvv|cvc|login|logon|username|ssn", PHISHING),
    ("send|enter|provide|share|give|submit|type|confirm|update|verify|tell|text|email|reply|input|reenter us|me? your|the one? time|onetime|security|verification|authentication|access code|codes|passcode|number|details|password", PHISHING),
    ("send|enter|provide|share|give|submit|type|confirm|update|verify|tell|text|email|reply|input|reenter us|me? your|the full? credit|debit|bank|banking|payment|billing|account|login? card|account? number|numbers|details|information|info|credentials", PHISHING),
    ("send|enter|provide|share|give|submit|type|confirm|update|verify|tell|text|email|reply|input|reenter us|me? your|the social security|insurance number|numbers", PHISHING),
    ("reply|respond with your|the password|pin|passcode|credentials|login|code|card", PHISHING),
    ("verify|validate|reactivate|unlock|unfreeze|restore your account|identity|accounts", PHISHING),
    ("your account has|have been|is|was|will be suspended|locked|limited|disabled|closed|deactivated|compromised|frozen|restricted|terminated|blocked", PHISHING),
    ("account|accounts will be suspended|locked|closed|deactivated|terminated|deleted", PHISHING),
    ("to avoid|prevent account? suspension|closure|deactivation|termination", PHISHING),
    // --- marketing idioms that must stay low
    ("killer|killing|killin deal|deals|price|prices|offer|offers|savings|value|style|look|looks|app|feature|features|combo|sale|bargain|bargains", IDIOM),
    ("kill|kills|killed|killing|killin it|time", IDIOM),
    ("dressed to kill", IDIOM),
    ("kill two birds", IDIOM),
    ("die|dying|dye for", IDIOM),
    // Help and prevention services name self-harm to fight it.
    ("suicide|suicides|selfharm|overdose|overdoses prevention|awareness|hotline|hotlines|helpline|helplines|lifeline|crisis|support|survivor|survivors|loss|bereavement|research|watch|risk|squad", IDIOM),
    ("self harm|injury prevention|awareness|hotline|helpline|support|recovery", IDIOM),
    ("prevent|preventing|prevention|prevents|preventable|reduce|reducing|against|stop|end|ending|survived|surviving suicide|suicides|overdose|overdoses|selfharm", IDIOM),
    ("prevent|preventing|prevention of|against suicide|suicides|selfharm|overdose", IDIOM),
    ("kill|kills|killed the lights|engine|power|music|switch|process|app|bacteria|germs|weeds", IDIOM),
    ("dying to", IDIOM),
    ("die hard|hards|cast|casting|cut", IDIOM),
    ("dead simple|easy|serious|set|last|tired|center|centre|end|line|ringer|heat|on", IDIOM),
    ("drop dead", IDIOM),
    ("knock|knocks|knocking $target|em dead", IDIOM),
    ("shoot|shoots us|me|you|them|him|her an|a|over? quick|short? email|emails|e|mail|message|messages|note|line|text|dm|reply|question|call|photo|pic|picture", IDIOM),
    ("shoot for", IDIOM),
    ("shooting star|stars", IDIOM),
    ("a|another|his|her|your|my|our stab at", IDIOM),
    ("photo|video|fashion|product|film|photoshoot shoot|shoots|shooting", IDIOM),
    ("bath bomb|bombs", IDIOM),
    ("the|da bomb", IDIOM),
    ("murder mystery|mysteries", IDIOM),
    ("fruit|rum|holiday punch", IDIOM),
    ("punch card|cards|line|lines|list", IDIOM),
    ("pack|packs a punch", IDIOM),
    ("chink in the|his|her|their|your|our armor|armour", IDIOM),
];

/// Single-word slurs and strong profanity of four letters or more, for
/// cutting run-together text ("typicalbitchbehaviour", "fuckall") and for
/// reading one-letter misspellings ("fukced", "dickheds").
pub fn segment_words() -> impl Iterator<Item = &'static str> {
    single_word_slurs_and_profanity()
        .flat_map(|(spec, _)| spec.split('|'))
        .filter(|w| w.len() >= 4)
}

fn single_word_slurs_and_profanity() -> impl Iterator<Item = &'static (&'static str, Effect)> {
    ENTRIES.iter().filter(|(spec, effect)| {
        !spec.contains(' ')
            && matches!(
                effect,
                Effect::Harm { category: Hate, .. }
                    | Effect::Profanity { mild: false }
                    | Effect::Expletive
            )
    })
}

/// Entries for one-edit misspellings of single-word slurs and strong
/// profanity (first letter kept, never a common word), with their effect.
pub fn misspelt_entries(known: &std::collections::HashSet<&str>) -> Vec<(String, Effect)> {
    let mut out = Vec::new();
    for (spec, effect) in single_word_slurs_and_profanity() {
        let variants: Vec<String> = spec
            .split('|')
            .filter(|w| w.len() >= 4)
            .flat_map(crate::spelling::one_edit_variants)
            .filter(|v| !known.contains(v.as_str()) && !crate::spelling::is_common(v))
            .collect();
        if !variants.is_empty() {
            out.push((variants.join("|"), *effect));
        }
    }
    out
}
