//! The embedded retriever: a tantivy index in RAM over the corpus, BM25 over
//! title and keywords (boosted) and body, with audience and run-date filters
//! applied inside the query so they never eat into the top k.

use std::collections::HashSet;
use std::ops::Bound;

use async_trait::async_trait;
use cpo_shared::envelope::derive_id;
use cpo_shared::model::Snippet;
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::config::RetrievalConfig;
use crate::corpus::Corpus;
use crate::document::AUDIENCE_ALL;
use crate::relevance::{Calibration, TermStats, coverage};
use crate::retriever::{RetrievalError, RetrievalQuery, Retriever};
use crate::text::{ANALYZER_NAME, ANALYZER_VERSION, analyzer, query_terms, terms};

/// Expiry stored for documents that never expire.
const NEVER: i64 = i64::MAX;
/// The smallest indexing budget tantivy accepts; the corpus is a few kilobytes.
const WRITER_BUDGET_BYTES: usize = 15_000_000;

#[derive(Clone, Copy)]
struct Fields {
    ord: Field,
    title: Field,
    keywords: Field,
    body: Field,
    /// Audience labels as text, so a query naming a segment's traits favours the
    /// documents written for it over those written for everyone.
    audience_text: Field,
    /// Audience labels as exact terms, for the filter.
    audience: Field,
    approved_day: Field,
    expires_day: Field,
}

/// One scored hit, before the threshold: what relevance was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub snippet: Snippet,
    /// Raw BM25 score (boosted, summed over fields and terms).
    pub raw_score: f64,
    /// IDF-weighted share of the query's terms the document contains.
    pub coverage: f64,
}

pub struct TantivyRetriever {
    corpus: Corpus,
    reader: IndexReader,
    fields: Fields,
    analyzer: TextAnalyzer,
    /// Analyzed terms of each document (all text fields), by corpus position: coverage.
    document_terms: Vec<HashSet<String>>,
    stats: TermStats,
    calibration: Calibration,
    title_boost: f32,
    keywords_boost: f32,
    audience_boost: f32,
    fingerprint: String,
}

/// The audience labels that name a target group; `all` names none and would only
/// add noise.
fn targeted_audience(labels: &[String]) -> String {
    labels
        .iter()
        .filter(|l| l.as_str() != AUDIENCE_ALL)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn search_error(e: tantivy::TantivyError) -> RetrievalError {
    RetrievalError::Search(e.to_string())
}

impl TantivyRetriever {
    /// Index `corpus` in RAM with the scoring settings of `config`.
    pub fn new(corpus: Corpus, config: &RetrievalConfig) -> Result<Self, RetrievalError> {
        config.validate()?;
        let mut schema = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER_NAME)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Fields {
            ord: schema.add_u64_field("ord", FAST),
            title: schema.add_text_field("title", text.clone()),
            keywords: schema.add_text_field("keywords", text.clone()),
            body: schema.add_text_field("body", text.clone()),
            audience_text: schema.add_text_field("audience_text", text),
            audience: schema.add_text_field("audience", STRING),
            approved_day: schema.add_i64_field("approved_day", INDEXED),
            expires_day: schema.add_i64_field("expires_day", INDEXED),
        };
        let index = Index::create_in_ram(schema.build());
        index.tokenizers().register(ANALYZER_NAME, analyzer());

        // One thread and one commit give one segment with documents in corpus
        // order, so scores and tie order are the same on every run.
        let mut writer = index
            .writer_with_num_threads::<TantivyDocument>(1, WRITER_BUDGET_BYTES)
            .map_err(search_error)?;
        let mut analyzer = analyzer();
        let mut document_terms = Vec::with_capacity(corpus.len());
        for (ord, doc) in corpus.documents().iter().enumerate() {
            let keywords = doc.keywords.join(", ");
            let mut tantivy_doc = TantivyDocument::default();
            tantivy_doc.add_u64(fields.ord, ord as u64);
            tantivy_doc.add_text(fields.title, &doc.title);
            tantivy_doc.add_text(fields.keywords, &keywords);
            tantivy_doc.add_text(fields.body, &doc.body);
            let audience_text = targeted_audience(&doc.audience);
            tantivy_doc.add_text(fields.audience_text, &audience_text);
            for label in &doc.audience {
                tantivy_doc.add_text(fields.audience, label);
            }
            tantivy_doc.add_i64(fields.approved_day, doc.approved_at.days_since_epoch());
            tantivy_doc.add_i64(
                fields.expires_day,
                doc.expires_at.map_or(NEVER, |d| d.days_since_epoch()),
            );
            writer.add_document(tantivy_doc).map_err(search_error)?;

            let all_text = format!("{} {keywords} {} {audience_text}", doc.title, doc.body);
            document_terms.push(terms(&mut analyzer, &all_text).into_iter().collect());
        }
        writer.commit().map_err(search_error)?;
        writer.wait_merging_threads().map_err(search_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(search_error)?;

        let fingerprint = derive_id(&[
            corpus.fingerprint(),
            ANALYZER_VERSION,
            "bm25",
            &config.title_boost.to_string(),
            &config.keywords_boost.to_string(),
            &config.audience_boost.to_string(),
            &config.score_half_point.to_string(),
            &config.score_weight.to_string(),
        ]);
        Ok(Self {
            stats: TermStats::new(document_terms.iter()),
            corpus,
            reader,
            fields,
            analyzer,
            document_terms,
            calibration: config.calibration(),
            title_boost: config.title_boost,
            keywords_boost: config.keywords_boost,
            audience_boost: config.audience_boost,
            fingerprint,
        })
    }

    pub fn corpus(&self) -> &Corpus {
        &self.corpus
    }

    /// Every hit that passes the filters, scored, best first, before threshold and top k
    /// are applied (at most `pool` candidates by raw score).
    pub fn hits(&self, query: &RetrievalQuery, pool: usize) -> Result<Vec<Hit>, RetrievalError> {
        let mut analyzer = self.analyzer.clone();
        let terms = query_terms(&mut analyzer, &query.text);
        if terms.is_empty() || pool == 0 {
            return Ok(Vec::new());
        }
        // Coverage is of what the campaign asks for; the segment's words steer the
        // ranking (and the filter) but a document need not repeat them to be relevant.
        // An objective the corpus has no word of covers nothing.
        let weighted = self
            .stats
            .weigh(&query_terms(&mut analyzer, &query.objective));
        let tantivy_query = self.build_query(query, &terms);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&tantivy_query, &TopDocs::with_limit(pool).order_by_score())
            .map_err(search_error)?;

        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let ord = self.ord_of(&searcher, address)?;
            let (Some(doc), Some(doc_terms)) = (
                self.corpus.documents().get(ord),
                self.document_terms.get(ord),
            ) else {
                return Err(RetrievalError::Search(format!(
                    "index returned unknown document {ord}"
                )));
            };
            let raw_score = f64::from(score);
            let coverage = coverage(&weighted, doc_terms);
            hits.push(Hit {
                snippet: Snippet {
                    id: doc.id.clone(),
                    title: doc.title.clone(),
                    category: doc.category.as_str().to_string(),
                    text: doc.body.clone(),
                    relevance: self.calibration.relevance(raw_score, coverage),
                },
                raw_score,
                coverage,
            });
        }
        hits.sort_by(|a, b| {
            b.snippet
                .relevance
                .total_cmp(&a.snippet.relevance)
                .then(b.raw_score.total_cmp(&a.raw_score))
                .then_with(|| a.snippet.id.cmp(&b.snippet.id))
        });
        Ok(hits)
    }

    /// The top `query.top_k` snippets at or above `query.min_relevance`.
    pub fn search(&self, query: &RetrievalQuery) -> Result<Vec<Snippet>, RetrievalError> {
        // Relevance may reorder BM25's ranking (coverage), so look past the first k.
        let pool = query.top_k.saturating_mul(4).max(32);
        Ok(self
            .hits(query, pool)?
            .into_iter()
            .filter(|hit| hit.snippet.relevance >= query.min_relevance)
            .take(query.top_k)
            .map(|hit| hit.snippet)
            .collect())
    }

    fn build_query(
        &self,
        query: &RetrievalQuery,
        terms: &std::collections::BTreeSet<String>,
    ) -> BooleanQuery {
        let f = self.fields;
        let mut text: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 4);
        for term in terms {
            for (field, boost) in [
                (f.title, self.title_boost),
                (f.keywords, self.keywords_boost),
                (f.body, 1.0),
                (f.audience_text, self.audience_boost),
            ] {
                let term_query = Box::new(TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                ));
                text.push((Occur::Should, Box::new(BoostQuery::new(term_query, boost))));
            }
        }
        let audience = TermSetQuery::new(
            std::iter::once(AUDIENCE_ALL)
                .chain(query.audience.iter().map(String::as_str))
                .map(|label| Term::from_field_text(f.audience, label)),
        );
        let as_of = query.as_of.days_since_epoch();
        let approved = RangeQuery::new(
            Bound::Unbounded,
            Bound::Included(Term::from_field_i64(f.approved_day, as_of)),
        );
        let not_expired = RangeQuery::new(
            Bound::Excluded(Term::from_field_i64(f.expires_day, as_of)),
            Bound::Unbounded,
        );
        // Filters score 0 so the raw score is the text match alone.
        let filter =
            |q: Box<dyn Query>| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(q, 0.0)) };
        BooleanQuery::new(vec![
            (Occur::Must, Box::new(BooleanQuery::new(text))),
            (Occur::Must, filter(Box::new(audience))),
            (Occur::Must, filter(Box::new(approved))),
            (Occur::Must, filter(Box::new(not_expired))),
        ])
    }

    fn ord_of(
        &self,
        searcher: &tantivy::Searcher,
        address: DocAddress,
    ) -> Result<usize, RetrievalError> {
        let column = searcher
            .segment_reader(address.segment_ord)
            .fast_fields()
            .u64("ord")
            .map_err(search_error)?;
        column
            .first(address.doc_id)
            .map(|ord| ord as usize)
            .ok_or_else(|| RetrievalError::Search("document without ord".into()))
    }
}

#[async_trait]
impl Retriever for TantivyRetriever {
    fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    async fn retrieve(&self, query: &RetrievalQuery) -> Result<Vec<Snippet>, RetrievalError> {
        // Microseconds over a corpus this size: not worth a blocking-pool hop.
        self.search(query)
    }
}
