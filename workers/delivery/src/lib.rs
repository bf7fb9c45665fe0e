//! cpo delivery stage.
