//! Customer batches encoded while pass two reads them.
//!
//! Each customer's JSON is written straight into the batch message from the
//! borrowed `CustomerRow`: no owned `Customer`, no intermediate vector, no
//! re-growing buffer. The envelope around the list is serde's own output for an
//! empty batch, split at its `"customers":[`; only the list is written here, and
//! tests hold it byte-for-byte to what serde writes for the same values.

use cpo_shared::model::{CampaignContext, CustomerBatch};
use cpo_shared::{Envelope, Outgoing, queues};

use crate::outputs::batch_id;
use crate::record::CustomerRow;
use crate::scan::{BatchSink, ScanError};

/// The `BatchSink` the stage uses: hands each finished batch message to `on_batch`.
pub struct BatchEncoder<F> {
    campaign: CampaignContext,
    on_batch: F,
    seq: u64,
    id: String,
    body: Vec<u8>,
    suffix: Vec<u8>,
    in_batch: usize,
    batch_size: usize,
}

/// Typical JSON size of one segmented customer is ~320 bytes; over-reserving is cheap.
const BYTES_PER_CUSTOMER: usize = 400;
const CUSTOMERS_KEY: &[u8] = b"\"customers\":[";

impl<F> BatchEncoder<F>
where
    F: FnMut(Outgoing) -> Result<(), ScanError>,
{
    pub fn new(campaign: CampaignContext, batch_size: usize, on_batch: F) -> Self {
        Self {
            campaign,
            on_batch,
            seq: 0,
            id: String::new(),
            body: Vec::new(),
            suffix: Vec::new(),
            in_batch: 0,
            batch_size,
        }
    }

    fn open(&mut self) -> Result<(), ScanError> {
        self.id = batch_id(&self.campaign.campaign_id, self.seq);
        let empty = Envelope::new(
            self.id.clone(),
            self.campaign.campaign_id.clone(),
            CustomerBatch {
                campaign: self.campaign.clone(),
                batch_seq: self.seq,
                customers: Vec::new(),
            },
        );
        let frame = serde_json::to_vec(&empty).map_err(|e| ScanError::Encode(e.to_string()))?;
        // A key in raw JSON cannot occur inside a string (its quotes would be escaped),
        // so the last match is the batch's own list.
        let split = frame
            .windows(CUSTOMERS_KEY.len())
            .rposition(|w| w == CUSTOMERS_KEY)
            .map(|at| at + CUSTOMERS_KEY.len())
            .ok_or_else(|| ScanError::Encode("batch envelope has no customers list".into()))?;
        self.body = Vec::with_capacity(frame.len() + self.batch_size * BYTES_PER_CUSTOMER);
        self.body.extend_from_slice(&frame[..split]);
        self.suffix.clear();
        self.suffix.extend_from_slice(&frame[split..]);
        Ok(())
    }
}

impl<F> BatchSink for BatchEncoder<F>
where
    F: FnMut(Outgoing) -> Result<(), ScanError>,
{
    fn add(&mut self, segment: &str, row: &CustomerRow) -> Result<(), ScanError> {
        if self.in_batch == 0 {
            self.open()?;
        } else {
            self.body.push(b',');
        }
        write_segmented(&mut self.body, segment, row)
            .map_err(|e| ScanError::Encode(e.to_string()))?;
        self.in_batch += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ScanError> {
        if self.in_batch == 0 {
            // Nothing opened: there is no frame to close, and an empty batch says nothing.
            return Ok(());
        }
        self.body.extend_from_slice(&self.suffix);
        let out = Outgoing {
            queue: queues::AUDIENCE,
            id: std::mem::take(&mut self.id),
            body: std::mem::take(&mut self.body),
        };
        self.seq += 1;
        self.in_batch = 0;
        (self.on_batch)(out)
    }
}

/// One `SegmentedCustomer` as serde_json writes it, field for field and byte for
/// byte, without going through serde's generic string escaping for the common
/// case of text that needs none.
pub fn write_segmented(
    out: &mut Vec<u8>,
    segment: &str,
    c: &CustomerRow,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"segment\":");
    string(out, segment)?;
    out.extend_from_slice(b",\"customer\":{\"customer_id\":");
    string(out, c.customer_id)?;
    out.extend_from_slice(b",\"first_name\":");
    string(out, c.first_name)?;
    out.extend_from_slice(b",\"email\":");
    string(out, c.email)?;
    out.extend_from_slice(b",\"age\":");
    number(out, c.age);
    out.extend_from_slice(b",\"location\":");
    string(out, c.location)?;
    out.extend_from_slice(b",\"tier\":");
    string(out, c.tier)?;
    out.extend_from_slice(b",\"purchase_frequency\":");
    number(out, c.purchase_frequency);
    out.extend_from_slice(b",\"avg_order_value\":");
    serde_json::to_writer(&mut *out, &c.avg_order_value)?;
    out.extend_from_slice(b",\"last_engagement_days\":");
    number(out, c.last_engagement_days);
    out.extend_from_slice(b",\"historical_open_rate\":");
    serde_json::to_writer(&mut *out, &c.historical_open_rate)?;
    out.extend_from_slice(b",\"historical_click_rate\":");
    serde_json::to_writer(&mut *out, &c.historical_click_rate)?;
    out.extend_from_slice(if c.consent {
        b",\"consent\":true}}"
    } else {
        b",\"consent\":false}}"
    });
    Ok(())
}

/// serde_json escapes exactly `"`, `\` and control bytes below 0x20; text without
/// them is copied as is, anything else goes through serde_json itself.
fn string(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, text)
    }
}

/// Decimal digits of a `u32`, as serde_json writes them (no sign, no padding).
fn number(out: &mut Vec<u8>, mut value: u32) {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpo_shared::model::{Customer, SegmentedCustomer};
    use proptest::prelude::*;

    fn campaign() -> CampaignContext {
        CampaignContext {
            campaign_id: "c1".into(),
            name: "n \"customers\":[] n".into(),
            objective: "o".into(),
            call_to_action_url: None,
            tones: vec!["friendly".into()],
            arm_weights: Default::default(),
        }
    }

    fn customer(id: &str) -> Customer {
        Customer {
            customer_id: id.into(),
            first_name: "Zoë \"Z\"\nX".into(),
            email: format!("{id}@example.com"),
            age: 30,
            location: "São Paulo".into(),
            tier: "gold".into(),
            purchase_frequency: 4,
            avg_order_value: 123.45,
            last_engagement_days: 3,
            historical_open_rate: 0.1,
            historical_click_rate: 0.05,
            consent: true,
        }
    }

    #[test]
    fn encoded_batches_are_the_envelopes_serde_would_write() {
        let customers: Vec<_> = ["C1", "C2", "C3"].map(customer).into_iter().collect();
        let mut published = Vec::new();
        let mut encoder = BatchEncoder::new(campaign(), 2, |out: Outgoing| {
            published.push(out);
            Ok(())
        });
        for (i, c) in customers.iter().enumerate() {
            let segment = if i == 0 { "A" } else { "B" };
            encoder
                .add(segment, &CustomerRow::from_customer(c))
                .unwrap();
            if i == 1 {
                encoder.flush().unwrap();
            }
        }
        encoder.flush().unwrap();
        assert_eq!(published.len(), 2);
        for (seq, out) in published.iter().enumerate() {
            assert_eq!(out.queue, queues::AUDIENCE);
            let decoded: Envelope<CustomerBatch> = serde_json::from_slice(&out.body).unwrap();
            assert_eq!(decoded.id, out.id);
            assert_eq!(decoded.id, batch_id("c1", seq as u64));
            let expected =
                crate::outputs::batch(&campaign(), seq as u64, decoded.payload.customers.clone())
                    .unwrap();
            let reference: Envelope<CustomerBatch> =
                serde_json::from_slice(&expected.body).unwrap();
            assert_eq!(decoded.payload, reference.payload);
            // byte-for-byte what serde writes for the same envelope
            let mut same = reference.clone();
            same.first_seen_ms = decoded.first_seen_ms;
            assert_eq!(out.body, serde_json::to_vec(&same).unwrap());
        }
        let first: Envelope<CustomerBatch> = serde_json::from_slice(&published[0].body).unwrap();
        let names: Vec<_> = first
            .payload
            .customers
            .iter()
            .map(|c| c.segment.as_str())
            .collect();
        assert_eq!(names, ["A", "B"]);
        assert_eq!(first.payload.customers[0].customer, customers[0]);
    }

    proptest! {
        #[test]
        fn a_customer_is_written_exactly_as_serde_writes_it(
            segment in "\\PC{0,12}",
            text in prop::collection::vec("(\\PC|[\"\\\\\n\t\u{1}\u{7f}]){0,10}", 5),
            numbers in prop::array::uniform3(any::<u32>()),
            reals in prop::array::uniform3(prop_oneof![any::<f64>(), 0.0f64..1.0, Just(0.1), Just(1e300)]),
            consent in any::<bool>(),
        ) {
            let reals = reals.map(|r| if r.is_finite() { r } else { 0.5 });
            let customer = Customer {
                customer_id: text[0].clone(),
                first_name: text[1].clone(),
                email: text[2].clone(),
                age: numbers[0],
                location: text[3].clone(),
                tier: text[4].clone(),
                purchase_frequency: numbers[1],
                avg_order_value: reals[0],
                last_engagement_days: numbers[2],
                historical_open_rate: reals[1],
                historical_click_rate: reals[2],
                consent,
            };
            // `from_customer` trims, so compare with the customer it describes.
            let row = CustomerRow::from_customer(&customer);
            let mut ours = Vec::new();
            write_segmented(&mut ours, &segment, &row).unwrap();
            let theirs = serde_json::to_vec(&SegmentedCustomer {
                segment: segment.clone(),
                customer: row.to_customer(),
            })
            .unwrap();
            prop_assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(theirs).unwrap());
        }
    }
}
