//! Invariant 4 (every customer accounted for), checked over random audiences:
//! whatever the rows contain, total == segmented + excluded, each row lands in
//! exactly one place, and the two passes agree.

use std::collections::HashSet;

use cpo_segmentation::RuleSet;
use cpo_segmentation::record::COLUMNS;
use cpo_segmentation::scan::{
    CsvText, MultilineCsvText, PassOne, Plan, RowSource, owned_batches, pass_one, pass_two,
};
use cpo_segmentation::screen::Suppressions;
use cpo_shared::model::Customer;
use proptest::prelude::*;

/// A number most of the time, junk some of the time.
fn number(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![
        9 => valid,
        1 => prop_oneof![
            Just(String::new()),
            Just("abc".to_string()),
            Just("-4".to_string()),
            Just("1.5".to_string()),
            Just("NaN".to_string()),
        ],
    ]
    .boxed()
}

fn rate() -> BoxedStrategy<String> {
    number((0u32..=1000).prop_map(|r| format!("{:.3}", f64::from(r) / 1000.0)))
}

prop_compose! {
    fn row()(
        id in prop_oneof![8 => (0u8..40).prop_map(|i| format!("C{i}")), 1 => Just(String::new())],
        name in "[A-Za-z ,\"\n]{0,8}",
        email in prop_oneof![8 => "[a-z]{1,6}@example\\.com", 1 => "[a-z@.]{0,8}"],
        age in number((18u32..90).prop_map(|a| a.to_string())),
        tier in prop_oneof![Just("bronze"), Just("silver"), Just("gold"), Just("platinum")],
        frequency in number((0u32..30).prop_map(|f| f.to_string())),
        order_value in number((0u32..60_000).prop_map(|v| format!("{:.2}", f64::from(v) / 100.0))),
        days in number((0u32..400).prop_map(|d| d.to_string())),
        open in rate(),
        click in rate(),
        consent in prop_oneof![Just("true"), Just("No"), Just("1"), Just("0"), Just("YES"), Just("maybe")],
        drop_field in prop::option::weighted(0.05, 0usize..12),
    ) -> Vec<String> {
        let mut fields = vec![
            id, name, email, age, "Austin".to_string(), tier.to_string(), frequency,
            order_value, days, open, click, consent.to_string(),
        ];
        if let Some(i) = drop_field {
            fields.remove(i);
        }
        fields
    }
}

fn to_csv(rows: &[Vec<String>]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    writer.write_record(COLUMNS).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

fn plan(suppressed: &[String], batch_size: usize) -> Plan {
    Plan {
        rules: RuleSet::bundled().unwrap(),
        suppressions: Suppressions::new(suppressed),
        batch_size,
    }
}

/// Both passes over `source`; returns pass one and every customer id pass two batched.
fn both_passes(source: &(impl RowSource + ?Sized), plan: &Plan) -> (PassOne, Vec<String>) {
    let one = pass_one(source, plan).unwrap();
    let mut batched = Vec::new();
    let mut sequence = Vec::new();
    let mut sink = owned_batches(|seq, batch| {
        assert!(!batch.is_empty() && batch.len() <= plan.batch_size);
        sequence.push(seq);
        batched.extend(batch.into_iter().map(|c| c.customer.customer_id));
        Ok(())
    });
    let two = pass_two(source, plan, &one, &mut sink).unwrap();
    one.check(&two).unwrap();
    assert_eq!(sequence, (0..two.batches).collect::<Vec<_>>());
    assert_eq!(two.batches, one.batches(plan.batch_size));
    (one, batched)
}

fn assert_accounted(one: &PassOne, batched: &[String], rows: u64) {
    assert_eq!(one.customers_total, rows);
    assert_eq!(
        one.customers_total,
        one.segmented() + one.exclusions.len() as u64
    );
    assert_eq!(batched.len() as u64, one.segmented());
    assert_eq!(
        one.profiles.iter().map(|p| p.size).sum::<u64>(),
        one.segmented()
    );
    // duplicates are excluded, so nobody is batched twice
    let unique: HashSet<&String> = batched.iter().collect();
    assert_eq!(unique.len(), batched.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_csv_row_is_segmented_or_excluded_once(
        rows in prop::collection::vec(row(), 0..80),
        suppressed in prop::collection::vec((0u8..40).prop_map(|i| format!("C{i}")), 0..5),
        batch_size in 1usize..20,
    ) {
        let csv = to_csv(&rows);
        let plan = plan(&suppressed, batch_size);
        // Quoted line breaks allowed: one customer per record.
        let (one, batched) = both_passes(&MultilineCsvText(&csv), &plan);
        assert_accounted(&one, &batched, rows.len() as u64);
        // every exclusion points at a distinct line of the file
        let lines: HashSet<Option<u64>> = one.exclusions.iter().map(|e| e.line).collect();
        prop_assert_eq!(lines.len(), one.exclusions.len());
        prop_assert!(one.exclusions.iter().all(|e| e.line.is_some_and(|l| l >= 2)));
        prop_assert!(batched.iter().all(|id| !suppressed.contains(id)));

        // The default, one customer per physical line: the same invariants
        // hold with lines for records, and no first name spans a line.
        let physical = csv.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count() as u64 - 1;
        let (one, batched) = both_passes(&CsvText(&csv), &plan);
        assert_accounted(&one, &batched, physical);
        let lines: HashSet<Option<u64>> = one.exclusions.iter().map(|e| e.line).collect();
        prop_assert_eq!(lines.len(), one.exclusions.len());
        prop_assert!(batched.iter().all(|id| !suppressed.contains(id)));
    }

    #[test]
    fn every_inline_customer_is_segmented_or_excluded_once(
        customers in prop::collection::vec(
            (0u8..30, any::<bool>(), 0u32..30, 0.0f64..600.0, 0u32..120, -0.1f64..1.1, 0.0f64..0.5),
            0..60,
        ),
        suppressed in prop::collection::vec((0u8..30).prop_map(|i| format!("C{i}")), 0..4),
    ) {
        let customers: Vec<Customer> = customers
            .into_iter()
            .map(|(id, consent, frequency, order_value, days, open, click)| Customer {
                customer_id: format!("C{id}"),
                first_name: "Ana".into(),
                email: format!("c{id}@example.com"),
                age: 40,
                location: "Austin".into(),
                tier: "gold".into(),
                purchase_frequency: frequency,
                avg_order_value: order_value,
                last_engagement_days: days,
                historical_open_rate: open,
                historical_click_rate: click,
                consent,
            })
            .collect();
        let plan = plan(&suppressed, 7);
        let (one, batched) = both_passes(customers.as_slice(), &plan);
        assert_accounted(&one, &batched, customers.len() as u64);
    }
}
