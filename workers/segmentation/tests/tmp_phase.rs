use cpo_segmentation::RuleSet;
use cpo_segmentation::encode::BatchEncoder;
use cpo_segmentation::scan::{CsvFile, Plan, pass_one, pass_two};
use cpo_segmentation::screen::Suppressions;
use cpo_shared::model::{CampaignContext, default_tones};
#[test]
#[ignore]
fn phase() {
    let path = std::env::var("CSV").unwrap();
    let phase = std::env::var("PHASE").unwrap();
    let plan = Plan {
        rules: RuleSet::bundled().unwrap(),
        suppressions: Suppressions::new(&["C0000017".to_string(), "x@example.com".to_string()]),
        batch_size: 1000,
    };
    let context = CampaignContext {
        campaign_id: "perf".into(),
        name: "perf".into(),
        objective: "perf".into(),
        call_to_action_url: None,
        tones: default_tones(),
        arm_weights: Default::default(),
    };
    if phase == "gen" {
        cpo_segmentation::generate_customers(
            1_000_000,
            42,
            std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
        )
        .unwrap();
        return;
    }
    if phase == "read" || phase == "parse" {
        let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(
            std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&path).unwrap()),
        );
        let cols =
            cpo_segmentation::record::Columns::from_header(r.byte_headers().unwrap()).unwrap();
        let mut rec = csv::ByteRecord::new();
        let mut n = 0u64;
        let mut ok = 0u64;
        while r.read_byte_record(&mut rec).unwrap() {
            n += 1;
            if phase == "parse" {
                if let Ok(row) = cpo_segmentation::record::CustomerRow::parse(&rec, &cols) {
                    if row.validate().is_ok() {
                        ok += 1;
                    }
                }
            }
        }
        println!("{n} {ok}");
        return;
    }
    let source = CsvFile(path.into());
    let one = pass_one(&source, &plan).unwrap();
    if phase == "two" {
        let mut bytes = 0;
        let mut encoder = BatchEncoder::new(context, 1000, |out| {
            bytes += out.body.len();
            Ok(())
        });
        let two = pass_two(&source, &plan, &one, &mut encoder).unwrap();
        println!("{} {}", two.batches, bytes);
    }
}
#[derive(Default)]
struct P(u64);
impl std::hash::Hasher for P {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {}
    fn write_u64(&mut self, k: u64) {
        self.0 = k
    }
}
#[test]
#[ignore]
fn tables() {
    use std::collections::{HashMap, HashSet};
    use std::hash::BuildHasherDefault;
    let n = 1_000_000u64;
    let keys: Vec<u64> = (0..n)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9E3779B97F4A7C15);
            x ^= x >> 29;
            x = x.wrapping_mul(0xBF58476D1CE4E5B9);
            x ^ (x >> 32)
        })
        .collect();
    for cap in [0usize, 1_100_000] {
        let t = std::time::Instant::now();
        let mut s: HashSet<u64, BuildHasherDefault<P>> =
            HashSet::with_capacity_and_hasher(cap, Default::default());
        for &k in &keys {
            s.insert(k);
        }
        println!("set u64 cap {cap}: {:?} {}", t.elapsed(), s.len());
        let t = std::time::Instant::now();
        let mut m: HashMap<u64, (u64, u64), BuildHasherDefault<P>> =
            HashMap::with_capacity_and_hasher(cap, Default::default());
        for &k in &keys {
            m.insert(k, (k, k));
        }
        println!("map 24B cap {cap}: {:?} {}", t.elapsed(), m.len());
        let t = std::time::Instant::now();
        let mut v: Vec<(u64, u64)> = Vec::with_capacity(cap);
        for &k in &keys {
            v.push((k, k));
        }
        v.sort_unstable();
        println!("vec+sort cap {cap}: {:?} {}", t.elapsed(), v.len());
    }
}
