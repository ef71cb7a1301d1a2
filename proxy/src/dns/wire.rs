//! The DNS wire format, as much as the sandbox resolver needs: one question in, an answer
//! with A/AAAA records (or an error code) out. Parsing never panics on hostile input.

use std::net::IpAddr;

/// Response codes the resolver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    /// The name exists (maybe with no record of the asked type).
    NoError = 0,
    /// The query could not be parsed.
    FormErr = 1,
    /// The name does not exist (no rule allows it).
    NxDomain = 3,
    /// Opcode not implemented.
    NotImp = 4,
    /// The resolver will not answer (class other than IN, rate limit).
    Refused = 5,
}

/// `A`.
pub const QTYPE_A: u16 = 1;
/// `AAAA`.
pub const QTYPE_AAAA: u16 = 28;
/// Class `IN`.
pub const QCLASS_IN: u16 = 1;

const HEADER_LEN: usize = 12;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Transaction id.
    pub id: u16,
    /// The header's opcode.
    pub opcode: u8,
    /// Recursion desired (echoed back).
    pub rd: bool,
    /// The name, labels joined by dots; bytes outside `[A-Za-z0-9_-]` are escaped as `\DDD`
    /// (so that tunnelled binary data is visible in the log and never matches a rule).
    pub qname: String,
    /// The query type.
    pub qtype: u16,
    /// The query class.
    pub qclass: u16,
    /// Where the question section ends in the message.
    question_end: usize,
}

/// Why a message is not a query the resolver can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than a header.
    #[error("DNS message shorter than its 12-byte header")]
    Short,
    /// A response, not a query.
    #[error("DNS message is a response, not a query")]
    NotQuery,
    /// Not exactly one question.
    #[error("DNS query with {0} questions (exactly one is supported)")]
    QuestionCount(u16),
    /// The question runs past the end, uses compression, or the name is too long.
    #[error("malformed DNS question: {0}")]
    Question(&'static str),
}

impl WireError {
    /// The transaction id, when the header was readable (to answer FORMERR).
    pub fn id(msg: &[u8]) -> Option<u16> {
        (msg.len() >= 2).then(|| u16::from_be_bytes([msg[0], msg[1]]))
    }
}

/// Parses a query with exactly one question.
pub fn parse_query(msg: &[u8]) -> Result<Query, WireError> {
    if msg.len() < HEADER_LEN {
        return Err(WireError::Short);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Err(WireError::NotQuery);
    }
    let opcode = ((flags >> 11) & 0x0f) as u8;
    let rd = flags & 0x0100 != 0;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount != 1 {
        return Err(WireError::QuestionCount(qdcount));
    }
    let mut pos = HEADER_LEN;
    let mut qname = String::new();
    let mut wire_len = 0usize;
    loop {
        let len = *msg
            .get(pos)
            .ok_or(WireError::Question("name runs past the end"))? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return Err(WireError::Question(
                "compressed or extended label in a question",
            ));
        }
        wire_len += len + 1;
        if wire_len > 255 {
            return Err(WireError::Question("name longer than 255 bytes"));
        }
        let label = msg
            .get(pos..pos + len)
            .ok_or(WireError::Question("label runs past the end"))?;
        pos += len;
        if !qname.is_empty() {
            qname.push('.');
        }
        for &b in label {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                qname.push(b as char);
            } else {
                qname.push_str(&format!("\\{b:03}"));
            }
        }
    }
    let tail = msg
        .get(pos..pos + 4)
        .ok_or(WireError::Question("type and class run past the end"))?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Ok(Query {
        id,
        opcode,
        rd,
        qname,
        qtype,
        qclass,
        question_end: pos + 4,
    })
}

/// The answer to `query` (parsed from `msg`): the header, the question echoed, and one record
/// per address of the query's type, with `ttl` seconds.
pub fn answer(msg: &[u8], query: &Query, rcode: Rcode, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let records: Vec<&IpAddr> = addrs
        .iter()
        .filter(|a| match query.qtype {
            QTYPE_A => a.is_ipv4(),
            QTYPE_AAAA => a.is_ipv6(),
            _ => false,
        })
        .collect();
    let mut out = Vec::with_capacity(query.question_end + records.len() * 28);
    out.extend_from_slice(&query.id.to_be_bytes());
    let flags: u16 = 0x8000
        | (u16::from(query.opcode) << 11)
        | 0x0400 // authoritative: the sandbox resolver is the only one
        | if query.rd { 0x0100 } else { 0 }
        | 0x0080
        | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&msg[HEADER_LEN..query.question_end]);
    for addr in records {
        out.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        out.extend_from_slice(&query.qtype.to_be_bytes());
        out.extend_from_slice(&QCLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        match addr {
            IpAddr::V4(v4) => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(&v6.octets());
            }
        }
    }
    out
}

/// A bare error answer (no question echoed) for a message that could not be parsed.
pub fn error_answer(id: u16, rcode: Rcode) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(0x8000u16 | rcode as u16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// The mnemonic of common query types, for the log (`TYPE<n>` otherwise).
pub fn qtype_name(qtype: u16) -> String {
    match qtype {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name {
            m.push(l.len() as u8);
            m.extend_from_slice(l);
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn round_trip_a_and_aaaa() {
        let m = query(&[b"api", b"eu", b"mistral", b"ai"], QTYPE_A);
        let q = parse_query(&m).unwrap();
        assert_eq!(q.qname, "api.eu.mistral.ai");
        assert_eq!((q.id, q.qtype, q.qclass, q.rd), (0x1234, 1, 1, true));
        let addrs: Vec<IpAddr> = vec!["198.18.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let a = answer(&m, &q, Rcode::NoError, &addrs, 60);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one A record");
        assert_eq!(&a[a.len() - 4..], &[198, 18, 0, 1]);
        let m6 = query(&[b"x"], QTYPE_AAAA);
        let q6 = parse_query(&m6).unwrap();
        let a6 = answer(&m6, &q6, Rcode::NoError, &addrs, 60);
        assert_eq!(
            &a6[a6.len() - 16..],
            &"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
        );
    }

    #[test]
    fn binary_labels_are_escaped() {
        let q = parse_query(&query(&[b"a.b\x00\xff", b"example"], 16)).unwrap();
        assert_eq!(q.qname, "a\\046b\\000\\255.example");
        assert_eq!(qtype_name(q.qtype), "TXT");
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        assert_eq!(parse_query(&[]), Err(WireError::Short));
        let mut m = query(&[b"a"], 1);
        m[2] |= 0x80;
        assert_eq!(parse_query(&m), Err(WireError::NotQuery));
        let mut m = query(&[b"a"], 1);
        m[5] = 2;
        assert_eq!(parse_query(&m), Err(WireError::QuestionCount(2)));
        let m = query(&[b"a"], 1);
        for cut in 12..m.len() {
            assert!(parse_query(&m[..cut]).is_err(), "cut at {cut}");
        }
        let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert!(parse_query(&m).is_err(), "pointer loop");
        m.truncate(12);
        m.extend(std::iter::repeat_n([63u8; 64], 5).flatten());
        assert!(parse_query(&m).is_err(), "over-long name");
        // every byte value in every position of a small message
        let base = query(&[b"ab", b"c"], 1);
        for i in 0..base.len() {
            for b in 0..=255u8 {
                let mut m = base.clone();
                m[i] = b;
                if let Ok(q) = parse_query(&m) {
                    let _ = answer(&m, &q, Rcode::NoError, &[], 1);
                }
            }
        }
    }
}
