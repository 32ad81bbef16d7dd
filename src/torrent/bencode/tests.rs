//! Bencode's unit tests: BEP 3's examples, the strict rules, hostile lengths and depths.

use super::*;

fn err(input: &[u8]) -> Error {
    decode(input).expect_err("should be refused")
}

#[test]
fn bep3_examples() {
    // The examples BEP 3 gives, each way.
    let cases: Vec<(&[u8], Value)> = vec![
        (b"4:spam", Value::Bytes(b"spam")),
        (b"0:", Value::Bytes(b"")),
        (b"i3e", Value::Int(3)),
        (b"i-3e", Value::Int(-3)),
        (b"i0e", Value::Int(0)),
        (
            b"l4:spam4:eggse",
            Value::List(vec![Value::Bytes(b"spam"), Value::Bytes(b"eggs")]),
        ),
        (b"le", Value::List(vec![])),
        (
            b"d3:cow3:moo4:spam4:eggse",
            Value::Dict(vec![
                (b"cow", Value::Bytes(b"moo")),
                (b"spam", Value::Bytes(b"eggs")),
            ]),
        ),
        (
            b"d4:spaml1:a1:bee",
            Value::Dict(vec![(
                b"spam",
                Value::List(vec![Value::Bytes(b"a"), Value::Bytes(b"b")]),
            )]),
        ),
        (
            b"d9:publisher3:bob17:publisher-webpage15:www.example.com18:publisher.location4:homee",
            Value::Dict(vec![
                (b"publisher", Value::Bytes(b"bob")),
                (b"publisher-webpage", Value::Bytes(b"www.example.com")),
                (b"publisher.location", Value::Bytes(b"home")),
            ]),
        ),
        (b"de", Value::Dict(vec![])),
    ];
    for (bytes, value) in cases {
        assert_eq!(decode(bytes).as_ref(), Ok(&value), "{bytes:?}");
        assert_eq!(encode(&value), bytes);
    }
}

#[test]
fn integer_extremes() {
    assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
    assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
    assert_eq!(err(b"i9223372036854775808e").what, "integer out of range");
    assert_eq!(encode(&Value::Int(i64::MIN)), b"i-9223372036854775808e");
}

#[test]
fn strict_integers() {
    assert_eq!(
        err(b"i03e"),
        Error {
            offset: 1,
            what: "integer with a leading zero"
        }
    );
    assert_eq!(err(b"i-03e").offset, 2);
    assert_eq!(
        err(b"i-0e"),
        Error {
            offset: 1,
            what: "negative zero"
        }
    );
    assert_eq!(
        err(b"ie"),
        Error {
            offset: 1,
            what: "integer without digits"
        }
    );
    assert_eq!(err(b"i-e").what, "integer without digits");
    assert_eq!(
        err(b"i12"),
        Error {
            offset: 3,
            what: "integer not ended by e"
        }
    );
    assert_eq!(err(b"i+1e").what, "integer without digits");
}

#[test]
fn strict_strings() {
    assert_eq!(
        err(b"03:abc"),
        Error {
            offset: 0,
            what: "string length with a leading zero"
        }
    );
    assert_eq!(
        err(b"5:abc"),
        Error {
            offset: 0,
            what: "string longer than the input"
        }
    );
    assert_eq!(err(b"l99999999999999999999999:ae").offset, 1);
    assert_eq!(
        err(b"3abc"),
        Error {
            offset: 1,
            what: "string length not followed by :"
        }
    );
}

#[test]
fn strict_dictionaries() {
    assert_eq!(
        err(b"d1:b0:1:a0:e"),
        Error {
            offset: 6,
            what: "dictionary keys not sorted"
        }
    );
    assert_eq!(
        err(b"d1:a0:1:a0:e"),
        Error {
            offset: 6,
            what: "duplicate dictionary key"
        }
    );
    assert_eq!(
        err(b"di1e0:e"),
        Error {
            offset: 1,
            what: "dictionary key is not a string"
        }
    );
    // Raw byte order, not text order: 'Z' (0x5a) sorts before 'a' (0x61), 0xff last.
    assert!(decode(b"d1:Z0:1:a0:1:\xff0:e").is_ok());
    assert_eq!(err(b"d1:a0:1:Z0:e").what, "dictionary keys not sorted");
    // A key that is a prefix of the next sorts first.
    assert!(decode(b"d1:a0:2:aa0:e").is_ok());
}

#[test]
fn structure_errors() {
    assert_eq!(
        err(b""),
        Error {
            offset: 0,
            what: "unexpected end of input"
        }
    );
    assert_eq!(
        err(b"l"),
        Error {
            offset: 1,
            what: "unexpected end of input"
        }
    );
    assert_eq!(
        err(b"d"),
        Error {
            offset: 1,
            what: "unexpected end of input in dictionary"
        }
    );
    assert_eq!(
        err(b"i1ei2e"),
        Error {
            offset: 3,
            what: "trailing bytes after the value"
        }
    );
    assert_eq!(
        err(b"x"),
        Error {
            offset: 0,
            what: "expected i, l, d or a digit"
        }
    );
    assert_eq!(err(b"d1:ae").offset, 4);
}

#[test]
fn nesting_is_bounded() {
    let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
    assert!(decode(&ok).is_ok());
    let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
    assert_eq!(
        err(&deep),
        Error {
            offset: MAX_DEPTH,
            what: "nesting too deep"
        }
    );
    let huge = vec![b'l'; 1_000_000];
    assert_eq!(err(&huge).what, "nesting too deep");
}

#[test]
fn encoder_is_canonical() {
    let v = Value::Dict(vec![
        (b"b", Value::Int(1)),
        (b"a", Value::Int(2)),
        (b"b", Value::Int(3)),
    ]);
    assert_eq!(encode(&v), b"d1:ai2e1:bi3ee");
    let input = b"d1:ad1:xli1ei-2e0:ee1:b3:\x00\xff:e";
    assert_eq!(encode(&decode(input).unwrap()), input);
}

#[test]
fn raw_entry_is_the_exact_bytes() {
    let input = b"d4:infod1:ai1ee4:zzzzi0ee";
    assert_eq!(raw_dict_entry(input, b"info"), Ok(Some(&b"d1:ai1ee"[..])));
    assert_eq!(raw_dict_entry(input, b"nope"), Ok(None));
    assert_eq!(
        raw_dict_entry(b"d4:infoi1e", b"info").unwrap_err().offset,
        10
    );
    assert!(raw_dict_entry(b"le", b"info").is_err());
}
