//! Hostile numeric input through `Model::energy`, `screen` and `pvalues`: every kind of input
//! maps to a documented error or a defined result (see `Model::energy`). Table-driven: each
//! case names an input and what must come out, and runs on a model with the trainer's default
//! energy (base measure + soft clip) and on one with the MLP alone.

mod support;

use ddaebm::model::CHUNK_ROWS;
use ddaebm::{Error, Model};
use support::{random_model, rows, Kind};

const DIM: usize = 4;

/// What a case must give.
enum Expect {
    /// `Error::ShapeMismatch`.
    Shape,
    /// `Error::NonFinite` at this row and column.
    NonFinite { row: usize, col: usize },
    /// Success, with energies checked by the function (which gets the model, the energies and
    /// the energy of an all-zero row); the screening and p-value checks are common to all.
    Energies(fn(Kind, &[f32], f32)),
}

struct Case {
    name: &'static str,
    x: Vec<f32>,
    n_rows: usize,
    expect: Expect,
}

fn case(name: &'static str, x: Vec<f32>, n_rows: usize, expect: Expect) -> Case {
    Case {
        name,
        x,
        n_rows,
        expect,
    }
}

/// `n` copies of one row.
fn repeat(row: [f32; DIM], n: usize) -> Vec<f32> {
    row.iter().copied().cycle().take(n * DIM).collect()
}

/// Normal rows with `value` written at (`row`, `col`).
fn with_value(n: usize, row: usize, col: usize, value: f32) -> Vec<f32> {
    let mut x = rows(n, DIM, 0);
    x[row * DIM + col] = value;
    x
}

fn all_finite(_: Kind, e: &[f32], _: f32) {
    assert!(e.iter().all(|v| v.is_finite()), "{e:?}");
}

/// Far enough out that the base measure overflows: `+∞` with one, never NaN or `−∞` without.
fn infinite_with_base_measure(kind: Kind, e: &[f32], _: f32) {
    match kind {
        Kind::BaseMeasure => assert!(e.iter().all(|&v| v == f32::INFINITY), "{e:?}"),
        Kind::PlainMlp => assert!(
            e.iter().all(|&v| v.is_finite() || v == f32::INFINITY),
            "{e:?}"
        ),
    }
}

fn like_zero_row(_: Kind, e: &[f32], zero: f32) {
    for &v in e {
        assert!(
            (v - zero).abs() <= 1e-5 * zero.abs().max(1.0),
            "{v} vs zero row {zero}"
        );
    }
}

/// Beyond the soft clip's saturation the MLP sees `±c` and only the base measure grows: the
/// energy is finite, far above any calibration energy, and grows with the radius.
fn grows_with_radius(kind: Kind, e: &[f32], _: f32) {
    assert!(e.iter().all(|v| v.is_finite()), "{e:?}");
    if kind == Kind::BaseMeasure {
        assert!(e.windows(2).all(|w| w[0] < w[1]), "{e:?}");
    }
}

fn cases() -> Vec<Case> {
    let last = 9;
    let big = [1e30f32, -1e30, 1e30, -1e30];
    let max = [f32::MAX, f32::MIN, f32::MAX, f32::MIN];
    let tiny = f32::from_bits(1); // the smallest subnormal, 1.4e-45
    let half_min = f32::MIN_POSITIVE / 2.0; // a subnormal near the normal range
    vec![
        // --- shapes ---
        case(
            "n_rows 0, empty x",
            vec![],
            0,
            Expect::Energies(|_, e, _| assert!(e.is_empty())),
        ),
        case("n_rows 0, one row of x", rows(1, DIM, 0), 0, Expect::Shape),
        case("one value short", vec![0.0; 2 * DIM - 1], 2, Expect::Shape),
        case(
            "one value too many",
            vec![0.0; 2 * DIM + 1],
            2,
            Expect::Shape,
        ),
        case(
            "x shorter than one row",
            vec![0.0; DIM - 1],
            1,
            Expect::Shape,
        ),
        case(
            "n_rows × dim overflows",
            vec![0.0; DIM],
            usize::MAX,
            Expect::Shape,
        ),
        // --- non-finite values: refused, naming the first one ---
        case(
            "NaN",
            with_value(10, 3, 2, f32::NAN),
            10,
            Expect::NonFinite { row: 3, col: 2 },
        ),
        case(
            "+Inf first",
            with_value(10, 0, 0, f32::INFINITY),
            10,
            Expect::NonFinite { row: 0, col: 0 },
        ),
        case(
            "-Inf last",
            with_value(10, last, DIM - 1, f32::NEG_INFINITY),
            10,
            Expect::NonFinite {
                row: last,
                col: DIM - 1,
            },
        ),
        case(
            "NaN and Inf: the first is named",
            {
                let mut x = with_value(10, 7, 1, f32::NAN);
                x[5 * DIM + 3] = f32::INFINITY;
                x
            },
            10,
            Expect::NonFinite { row: 5, col: 3 },
        ),
        case(
            "NaN past the first chunk: whole-batch row index",
            with_value(CHUNK_ROWS + 5, CHUNK_ROWS + 3, 1, f32::NAN),
            CHUNK_ROWS + 5,
            Expect::NonFinite {
                row: CHUNK_ROWS + 3,
                col: 1,
            },
        ),
        case(
            "NaN payload bits",
            with_value(2, 1, 0, f32::from_bits(0x7fc0_1234)),
            2,
            Expect::NonFinite { row: 1, col: 0 },
        ),
        // --- finite extremes: defined results ---
        case(
            "ordinary rows",
            rows(50, DIM, 3),
            50,
            Expect::Energies(all_finite),
        ),
        case(
            "all-zero rows",
            vec![0.0; 3 * DIM],
            3,
            Expect::Energies(like_zero_row),
        ),
        case(
            "negative zeros",
            vec![-0.0; 3 * DIM],
            3,
            Expect::Energies(like_zero_row),
        ),
        case(
            "smallest subnormals",
            repeat([tiny, -tiny, tiny, -tiny], 3),
            3,
            Expect::Energies(like_zero_row),
        ),
        case(
            "subnormals near f32::MIN_POSITIVE",
            repeat([half_min; DIM], 3),
            3,
            Expect::Energies(like_zero_row),
        ),
        case(
            "±1e30",
            repeat(big, 3),
            3,
            Expect::Energies(infinite_with_base_measure),
        ),
        case(
            "±f32::MAX (normalisation overflows to ±∞)",
            repeat(max, 3),
            3,
            Expect::Energies(infinite_with_base_measure),
        ),
        case(
            "one 1e30 feature in a normal row",
            with_value(1, 0, 2, 1e30),
            1,
            Expect::Energies(infinite_with_base_measure),
        ),
        case(
            "one f32::MAX feature in a normal row",
            with_value(1, 0, 1, f32::MAX),
            1,
            Expect::Energies(infinite_with_base_measure),
        ),
        case(
            "radii 1e3 to 1e15: soft clip saturated, base measure finite",
            [1e3f32, 1e6, 1e9, 1e12, 1e15]
                .iter()
                .flat_map(|r| [0.6 * r, -0.8 * r, 0.3 * r, 0.1 * r])
                .collect(),
            5,
            Expect::Energies(grows_with_radius),
        ),
    ]
}

fn check_case(model: &Model, kind: Kind, c: &Case, zero: f32) {
    let label = format!("{kind:?}, {}", c.name);
    let energy = model.energy(&c.x, c.n_rows);
    let screen = model.screen(&c.x, c.n_rows);
    let pvalues = model.pvalues(&c.x, c.n_rows);
    match &c.expect {
        Expect::Shape => {
            for r in [energy.err(), screen.err(), pvalues.err()] {
                assert!(
                    matches!(r, Some(Error::ShapeMismatch { .. })),
                    "{label}: {r:?}"
                );
            }
        }
        Expect::NonFinite { row, col } => {
            for r in [energy.err(), screen.err(), pvalues.err()] {
                match r {
                    Some(Error::NonFinite { row: r, col: c }) => {
                        assert_eq!((r, c), (*row, *col), "{label}")
                    }
                    other => panic!("{label}: {other:?}"),
                }
            }
        }
        Expect::Energies(check) => {
            let energy = energy.unwrap_or_else(|e| panic!("{label}: {e}"));
            let screen = screen.unwrap_or_else(|e| panic!("{label}: {e}"));
            let pvalues = pvalues.unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(energy.len(), c.n_rows, "{label}");
            // Never NaN, never −∞, whatever the row.
            assert!(
                energy
                    .iter()
                    .all(|e| !e.is_nan() && *e != f32::NEG_INFINITY),
                "{label}: {energy:?}"
            );
            std::panic::catch_unwind(|| check(kind, &energy, zero))
                .unwrap_or_else(|_| panic!("{label}: energies fail the case's check"));
            // screen and pvalues agree with the energies, bit for bit.
            let bits = |v: &[f32]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&screen.energy), bits(&energy), "{label}");
            let n_cal = model.calibration().sorted_energies().len();
            let smallest = 1.0 / (n_cal + 1) as f32;
            for (i, &e) in energy.iter().enumerate() {
                assert_eq!(screen.is_ood[i], e > model.threshold(), "{label}, row {i}");
                let p = pvalues[i];
                assert!(p >= smallest && p <= 1.0, "{label}, row {i}: p {p}");
                if e == f32::INFINITY {
                    assert!(screen.is_ood[i], "{label}, row {i}");
                    assert_eq!(p, smallest, "{label}, row {i}");
                }
            }
        }
    }
}

#[test]
fn every_kind_of_input_gives_its_documented_result() {
    for kind in [Kind::BaseMeasure, Kind::PlainMlp] {
        let model = random_model(DIM, &[32, 32], kind);
        let zero = model.energy(&[0.0; DIM], 1).unwrap()[0];
        assert!(zero.is_finite());
        for c in cases() {
            check_case(&model, kind, &c, zero);
        }
    }
}

#[test]
fn extreme_rows_do_not_disturb_their_neighbours() {
    // Ordinary rows score the same, bit for bit, whether the middle third of the batch is
    // ordinary or extreme. (Batches of the same size: a row's last bits may depend on the
    // batch size, through the matrix-multiply kernels.)
    for kind in [Kind::BaseMeasure, Kind::PlainMlp] {
        let model = random_model(DIM, &[32, 32], kind);
        let ordinary = rows(6, DIM, 1);
        let mut extreme = ordinary.clone();
        for (i, v) in [f32::MAX, 1e30, -1e30, f32::MIN, 1e20, -3e38]
            .into_iter()
            .enumerate()
        {
            extreme[i * DIM + i % DIM] = v;
        }
        let batch = |middle: &[f32]| {
            let mut x = ordinary.clone();
            x.extend(middle);
            x.extend(&ordinary);
            model.energy(&x, 18).unwrap()
        };
        let (plain, mixed) = (batch(&ordinary), batch(&extreme));
        for i in (0..6).chain(12..18) {
            assert_eq!(plain[i].to_bits(), mixed[i].to_bits(), "{kind:?} row {i}");
        }
        assert!(
            mixed[6..12].iter().all(|v| !v.is_nan()),
            "{kind:?}: {mixed:?}"
        );
    }
}

#[test]
fn sampling_edge_sizes() {
    let model = random_model(DIM, &[32, 32], Kind::BaseMeasure);
    assert!(model.sample(0, 1).unwrap().is_empty());
    assert!(matches!(
        model.sample(usize::MAX, 1),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        model.sample(usize::MAX / DIM, 1),
        Err(Error::InvalidArgument(_))
    ));
    let s = model.sample(3, 1).unwrap();
    assert_eq!(s.len(), 3 * DIM);
    assert!(s.iter().all(|v| v.is_finite()));
}
