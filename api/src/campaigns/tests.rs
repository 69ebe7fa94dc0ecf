//! The validator over whole files: each kind of bad row is reported with its row number and field, good
//! rows come out with their keys, totals add up.

use payouts_store::Yocto;

use super::validate::{Line, RowError, Rules, StopError, Totals, Validator};

fn rules() -> Rules {
    Rules {
        decimals: Some(6),
        max_amount: Yocto(1_000_000_000),
        max_memo_chars: 20,
        max_rows: 1_000,
        unregistered: Default::default(),
    }
}

/// (row key, receiver, amount) of a valid row.
type Good = (String, String, u128);

/// Runs a whole file; returns the valid rows' (key, receiver, amount), the errors and the totals.
fn run(rules: Rules, file: &str) -> Result<(Vec<Good>, Vec<RowError>, Totals), StopError> {
    let mut v = Validator::new(rules);
    let (mut good, mut bad) = (vec![], vec![]);
    for line in file.split('\n') {
        match v.line(line.as_bytes())? {
            Line::Skipped => {}
            Line::Valid(r) => good.push((r.row_key, r.receiver_id, r.amount.0)),
            Line::Invalid(e) => bad.extend(e),
        }
    }
    Ok((good, bad, v.totals()))
}

#[test]
fn every_kind_of_bad_row_is_reported_with_its_row_and_field() {
    let file = "receiver_id,amount,amount_tokens,memo,external_id\r\n\
        alice.near,5,,hi,\r\n\
        Not An Account,5,,,\n\
        bob.near,,1.0000001,,\n\
        carol.near,-3,,,\n\
        dave.near,,2000,,\n\
        erin.near,0,,,\n\
        frank.near,1,,\"tab\there\",\n\
        alice.near,7,,,\n\
        gina.near,,12.5,,g1\n\
        hank.near,1,,,g1\n\
        ivan.near,1,1,,\n\
        judy.near,1,,\n\
        \n\
        kim.near,,0.000001,\"a, quoted memo\",k1\n";
    let (good, bad, totals) = run(rules(), file).unwrap();
    assert_eq!(
        good,
        [
            ("#2".to_string(), "alice.near".to_string(), 5),
            ("g1".into(), "gina.near".into(), 12_500_000),
            ("k1".into(), "kim.near".into(), 1),
        ]
    );
    let got: Vec<(u64, Option<&str>)> = bad.iter().map(|e| (e.row, e.field)).collect();
    assert_eq!(
        got,
        [
            (3, Some("receiver_id")),
            (4, Some("amount_tokens")),
            (5, Some("amount")),
            (6, Some("amount_tokens")),
            (7, Some("amount")),
            (8, Some("memo")),
            (9, Some("receiver_id")),
            (11, Some("external_id")),
            (12, Some("amount")),
            (13, None),
        ],
        "{bad:#?}"
    );
    assert!(bad[1].reason.contains("7 decimals"), "{}", bad[1].reason);
    assert!(bad[3].reason.contains("maximum"), "{}", bad[3].reason);
    assert!(bad[4].reason.contains("more than 0"), "{}", bad[4].reason);
    assert!(bad[6].reason.contains("row 2"), "{}", bad[6].reason);
    assert!(bad[7].reason.contains("row 10"), "{}", bad[7].reason);
    assert_eq!(
        totals,
        Totals {
            rows: 13,
            valid: 3,
            invalid: 10,
            amount: Yocto(12_500_006)
        }
    );
}

#[test]
fn one_receiver_may_be_paid_twice_only_with_external_ids() {
    let file = "receiver_id,amount,external_id\na.near,1,x\na.near,2,y\na.near,3,\n";
    let (good, bad, _) = run(rules(), file).unwrap();
    assert_eq!(good.len(), 2);
    assert_eq!((bad[0].row, bad[0].field), (4, Some("receiver_id")));
}

#[test]
fn json_lines_and_unknown_decimals() {
    let file = r#"{"receiver_id":"a.near","amount":"10"}
{"receiver_id":"b.near","amount_tokens":"1.5"}
{"receiver_id":"c.near","amount":10}
"#;
    let no_decimals = Rules {
        decimals: None,
        ..rules()
    };
    let (good, bad, totals) = run(no_decimals, file).unwrap();
    assert_eq!(good, [("#1".to_string(), "a.near".to_string(), 10)]);
    assert_eq!((bad[0].row, bad[0].field), (2, Some("amount_tokens")));
    assert_eq!((bad[1].row, bad[1].field), (3, Some("amount")));
    assert_eq!(totals.rows, 3);
}

#[test]
fn whole_file_problems_stop_the_pass() {
    assert!(matches!(
        run(rules(), "reciever_id,amount\n"),
        Err(StopError::File(_))
    ));
    let many = Rules {
        max_rows: 2,
        ..rules()
    };
    assert_eq!(
        run(many, "receiver_id,amount\na.near,1\nb.near,1\nc.near,1\n").unwrap_err(),
        StopError::TooManyRows(2)
    );
    let huge = Rules {
        max_amount: Yocto(u128::MAX),
        ..rules()
    };
    let file = format!("receiver_id,amount\na.near,{}\nb.near,1\n", u128::MAX);
    assert_eq!(run(huge, &file).unwrap_err(), StopError::TotalOverflow);
    // Not UTF-8: a row error, not a stop.
    let mut v = Validator::new(rules());
    v.line(b"receiver_id,amount").unwrap();
    assert!(matches!(v.line(b"a.near,\xff").unwrap(), Line::Invalid(_)));
}
