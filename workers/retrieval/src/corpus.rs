//! The approved-content corpus: one Markdown file per document (see `document`).
//! Loading validates every document, so a bad one stops the worker at startup
//! with the file and field named, not mid-campaign.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::document::Document;

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("content directory {dir}: {message}")]
    Dir { dir: String, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}: field `{field}`: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: duplicate document id `{id}`")]
    Duplicate { file: String, id: String },
}

/// The validated documents, ordered by id, and a fingerprint of their content.
#[derive(Debug, Clone)]
pub struct Corpus {
    documents: Vec<Document>,
    fingerprint: String,
}

impl Corpus {
    /// Every `*.md` file of `dir` is a document; any invalid one fails the load.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, CorpusError> {
        let dir = dir.as_ref();
        let dir_error = |message: String| CorpusError::Dir {
            dir: dir.display().to_string(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| dir_error(e.to_string()))?;
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| dir_error(e.to_string()))?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if path.extension().is_some_and(|e| e == "md") && !hidden && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let mut documents = Vec::with_capacity(files.len());
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| CorpusError::File {
                file: file.display().to_string(),
                message: e.to_string(),
            })?;
            documents.push(Document::parse(file, &text)?);
        }
        if documents.is_empty() {
            return Err(dir_error("no `.md` documents".into()));
        }
        Self::from_documents(documents)
    }

    /// A corpus from documents already parsed (tests, other sources).
    pub fn from_documents(documents: Vec<Document>) -> Result<Self, CorpusError> {
        let mut by_id: BTreeMap<String, Document> = BTreeMap::new();
        for doc in documents {
            if by_id.contains_key(&doc.id) {
                return Err(CorpusError::Duplicate {
                    file: format!("{}.md", doc.id),
                    id: doc.id,
                });
            }
            by_id.insert(doc.id.clone(), doc);
        }
        let documents: Vec<Document> = by_id.into_values().collect();
        let mut hasher = Sha256::new();
        for doc in &documents {
            // Serializing our own plain struct cannot fail; an empty line would still
            // change the fingerprint, which is the safe direction.
            let line = serde_json::to_vec(doc).unwrap_or_default();
            hasher.update((line.len() as u64).to_le_bytes());
            hasher.update(&line);
        }
        let fingerprint = hex::encode(&hasher.finalize()[..8]);
        Ok(Self {
            documents,
            fingerprint,
        })
    }

    pub fn documents(&self) -> &[Document] {
        &self.documents
    }

    pub fn get(&self, id: &str) -> Option<&Document> {
        self.documents
            .binary_search_by(|d| d.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.documents[i])
    }

    /// Changes whenever any document's content changes; part of every cache key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn len(&self) -> usize {
        self.documents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nid: prod-x\ntitle: X Jacket\ncategory: product\naudience: [all]\nkeywords: [jacket]\napproved_at: 2026-01-01\n---\nThe X Jacket is warm.\n";

    fn parse(text: &str) -> Document {
        Document::parse(Path::new("content/prod-x.md"), text).unwrap()
    }

    #[test]
    fn fingerprint_tracks_content_and_duplicates_are_refused() {
        let a = parse(GOOD);
        let mut b = a.clone();
        b.body.push_str(" More.");
        let fa = Corpus::from_documents(vec![a.clone()]).unwrap();
        let fb = Corpus::from_documents(vec![b]).unwrap();
        assert_ne!(fa.fingerprint(), fb.fingerprint());
        assert_eq!(
            fa.fingerprint(),
            Corpus::from_documents(vec![a.clone()])
                .unwrap()
                .fingerprint()
        );
        assert!(matches!(
            Corpus::from_documents(vec![a.clone(), a]),
            Err(CorpusError::Duplicate { .. })
        ));
    }
}
