//! Fail-closed re-check of safety's approval: the content a customer would see
//! must hash to the approved hash, and the hash must carry safety's signature.

use cpo_shared::model::ApprovedTemplate;
use cpo_shared::signing::{Signer, content_hash};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval has no signature")]
    Unsigned,
    #[error("content does not match its approval (altered after safety approved it)")]
    ContentAltered,
    #[error("approval signature is invalid")]
    BadSignature,
}

pub fn verify_template(signer: &Signer, template: &ApprovedTemplate) -> Result<(), ApprovalError> {
    if template.approval.signature.trim().is_empty() {
        return Err(ApprovalError::Unsigned);
    }
    let hash = content_hash(
        &template.variant_id,
        &template.subject,
        &template.body,
        &template.citations,
    );
    if hash != template.approval.content_hash {
        return Err(ApprovalError::ContentAltered);
    }
    if !signer.verify(&hash, &template.approval.signature) {
        return Err(ApprovalError::BadSignature);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cpo_shared::model::Approval;

    use super::*;

    fn signed(signer: &Signer) -> ApprovedTemplate {
        let citations = vec!["doc-1".to_string()];
        let hash = content_hash("v1", "Subject", "Body [doc-1]", &citations);
        ApprovedTemplate {
            variant_id: "v1".into(),
            subject: "Subject".into(),
            body: "Body [doc-1]".into(),
            citations,
            approval: Approval {
                signature: signer.sign(&hash),
                content_hash: hash,
            },
        }
    }

    #[test]
    fn any_change_or_missing_signature_fails() {
        let signer = Signer::new(b"k".to_vec());
        assert_eq!(verify_template(&signer, &signed(&signer)), Ok(()));

        let mut body = signed(&signer);
        body.body.push('!');
        assert_eq!(
            verify_template(&signer, &body),
            Err(ApprovalError::ContentAltered)
        );
        let mut subject = signed(&signer);
        subject.subject = "Other".into();
        assert_eq!(
            verify_template(&signer, &subject),
            Err(ApprovalError::ContentAltered)
        );
        let mut cites = signed(&signer);
        cites.citations.push("doc-9".into());
        assert_eq!(
            verify_template(&signer, &cites),
            Err(ApprovalError::ContentAltered)
        );
        let mut unsigned = signed(&signer);
        unsigned.approval.signature.clear();
        assert_eq!(
            verify_template(&signer, &unsigned),
            Err(ApprovalError::Unsigned)
        );
        let other = signed(&Signer::new(b"other".to_vec()));
        assert_eq!(
            verify_template(&signer, &other),
            Err(ApprovalError::BadSignature)
        );
        // re-hashing altered content does not help without the key
        let mut rehashed = body.clone();
        rehashed.approval.content_hash =
            content_hash("v1", "Subject", "Body [doc-1]!", &rehashed.citations);
        assert_eq!(
            verify_template(&signer, &rehashed),
            Err(ApprovalError::BadSignature)
        );
    }
}
