//! `ddaebm-train export --onnx`: a model's level-0 energy as one ONNX graph (`docs/onnx.md`).
//!
//! The graph computes what [`ddaebm::Model::energy`] computes, from raw rows `x` of shape
//! `[N, d]` (N dynamic) to energies `[N]`: the normalisation, the input soft clip, the energy
//! network at level 0 and the base measure (Gaussian or mixture). A vector model's MLP is
//! folded ([`ddaebm::EnergyNet::fold_level0`]: x-branch and head layers, the level embedding
//! folded into the head's first bias); an image model's convolutional network
//! ([`ddaebm::EnergyNet::fold_level0_image`]) becomes `Conv`, GroupNorm (as
//! `InstanceNormalization` over the channel groups, then the per-channel affine), SiLU
//! (`Sigmoid`, `Mul`), `AveragePool` and `ReduceMean` nodes on the rows reshaped to
//! `[N, C, H, W]`, with each block's level bias folded into its first convolution's bias.
//! The calibrated threshold and the model's identity go into the ONNX metadata.
//!
//! The messages below are the subset of `onnx.proto` (proto2) the graph needs, with ONNX's own
//! field numbers; prost encodes them.

use std::path::Path;

use anyhow::{Context, Result};
use ddaebm::energy::folded::{DenseLayer, MixtureProduct};
use ddaebm::nn::conv::{BlockParts, ConvParts, DownsamplingParts, NormParts, GROUP_NORM_EPS};
use ddaebm::nn::soft_clip::soft_clip_bound;
use ddaebm::{ImageConfig, Model};
use prost::Message;

/// ONNX IR version of the written files (ONNX 1.13+; opset 17 needs IR 8).
pub const IR_VERSION: i64 = 8;
/// Opset of the default domain the graph uses.
pub const OPSET: i64 = 17;
/// Name of the graph's input (raw rows, `[N, d]` float32).
pub const INPUT: &str = "x";
/// Name of the graph's output (energies, `[N]` float32).
pub const OUTPUT: &str = "energy";

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, optional, tag = "1")]
    pub ir_version: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub producer_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub producer_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub doc_string: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, optional, tag = "1")]
    pub domain: Option<String>,
    #[prost(int64, optional, tag = "2")]
    pub version: Option<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, optional, tag = "10")]
    pub doc_string: Option<String>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub op_type: Option<String>,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
}

/// `AttributeProto.AttributeType` values the graph uses.
const ATTRIBUTE_FLOAT: i32 = 1;
const ATTRIBUTE_INT: i32 = 2;
const ATTRIBUTE_INTS: i32 = 7;

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub f: Option<f32>,
    #[prost(int64, optional, tag = "3")]
    pub i: Option<i64>,
    #[prost(int64, repeated, packed = "false", tag = "8")]
    pub ints: Vec<i64>,
    #[prost(int32, optional, tag = "20")]
    pub r#type: Option<i32>,
}

/// `TensorProto.DataType` values the graph uses.
const FLOAT: i32 = 1;
const INT64: i32 = 7;

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, packed = "false", tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, optional, tag = "2")]
    pub data_type: Option<i32>,
    #[prost(string, optional, tag = "8")]
    pub name: Option<String>,
    /// Little-endian values, row-major.
    #[prost(bytes = "vec", optional, tag = "9")]
    pub raw_data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, optional, tag = "1")]
    pub elem_type: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// Builds the graph node by node; every intermediate value gets a fresh name.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

/// An attribute of a node.
enum Attr {
    Float(&'static str, f32),
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
}

impl Attr {
    fn proto(self) -> AttributeProto {
        let mut a = AttributeProto::default();
        match self {
            Attr::Float(n, v) => {
                a.name = Some(n.into());
                a.f = Some(v);
                a.r#type = Some(ATTRIBUTE_FLOAT);
            }
            Attr::Int(n, v) => {
                a.name = Some(n.into());
                a.i = Some(v);
                a.r#type = Some(ATTRIBUTE_INT);
            }
            Attr::Ints(n, v) => {
                a.name = Some(n.into());
                a.ints = v;
                a.r#type = Some(ATTRIBUTE_INTS);
            }
        }
        a
    }
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    /// A float32 constant of shape `dims`.
    fn constant(&mut self, hint: &str, dims: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(FLOAT),
            name: Some(name.clone()),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        });
        name
    }

    /// A 1-D int64 constant (axes, shapes).
    fn int64s(&mut self, hint: &str, values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: Some(INT64),
            name: Some(name.clone()),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        });
        name
    }

    /// One node of `op` on `inputs`, writing `output` (a fresh name when `None`).
    fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<Attr>,
        output: Option<&str>,
    ) -> String {
        let out = match output {
            Some(o) => o.to_string(),
            None => self.fresh(&op.to_ascii_lowercase()),
        };
        let name = self.fresh(op);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs.into_iter().map(Attr::proto).collect(),
        });
        out
    }
}

/// A float32 tensor value of the given dimensions (`None`: the dynamic batch dimension).
fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: Some(FLOAT),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| match d {
                            Some(v) => Dimension {
                                dim_value: Some(*v as i64),
                                dim_param: None,
                            },
                            None => Dimension {
                                dim_value: None,
                                dim_param: Some("N".into()),
                            },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// The learned part `g` of the level-0 energy, in host memory.
enum Body {
    Mlp(Vec<DenseLayer>),
    Image(ImageConfig, Box<DownsamplingParts>),
}

/// `SiLU(x) = x · sigmoid(x)`.
fn silu(g: &mut Graph, x: &str) -> String {
    let s = g.node("Sigmoid", &[x], vec![], None);
    g.node("Mul", &[x, &s], vec![], None)
}

/// A same-size convolution (3×3 with zero padding 1, or 1×1) with bias on `[N, C, H, W]`.
fn conv(g: &mut Graph, x: &str, c: &ConvParts) -> String {
    let k = c.kernel;
    let w = g.constant("conv_w", &[c.out_channels, c.in_channels, k, k], &c.weight);
    let b = g.constant("conv_b", &[c.out_channels], &c.bias);
    let pad = (k / 2) as i64;
    g.node(
        "Conv",
        &[x, &w, &b],
        vec![
            Attr::Ints("kernel_shape", vec![k as i64, k as i64]),
            Attr::Ints("pads", vec![pad; 4]),
            Attr::Ints("strides", vec![1, 1]),
        ],
        None,
    )
}

/// GroupNorm on `[N, C, H, W]`: `InstanceNormalization` of `[N, G, (C/G)·H·W]` (statistics per
/// image and group, the biased variance, ε as the library's), then the per-channel affine.
fn group_norm(
    g: &mut Graph,
    x: &str,
    n: &NormParts,
    channels: usize,
    h: usize,
    w: usize,
) -> String {
    let grouped_shape = g.int64s("grouped_shape", &[0, n.groups as i64, -1]);
    let grouped = g.node("Reshape", &[x, &grouped_shape], vec![], None);
    let ones = g.constant("gn_scale", &[n.groups], &vec![1.0; n.groups]);
    let zeros = g.constant("gn_shift", &[n.groups], &vec![0.0; n.groups]);
    let normed = g.node(
        "InstanceNormalization",
        &[&grouped, &ones, &zeros],
        vec![Attr::Float("epsilon", GROUP_NORM_EPS as f32)],
        None,
    );
    let image_shape = g.int64s("image_shape", &[0, channels as i64, h as i64, w as i64]);
    let image = g.node("Reshape", &[&normed, &image_shape], vec![], None);
    let weight = g.constant("gn_weight", &[channels, 1, 1], &n.weight);
    let bias = g.constant("gn_bias", &[channels, 1, 1], &n.bias);
    let scaled = g.node("Mul", &[&image, &weight], vec![], None);
    g.node("Add", &[&scaled, &bias], vec![], None)
}

/// A residual block at `h × w`: `(skip(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))))/√2`.
fn res_block(g: &mut Graph, x: &str, b: &BlockParts, h: usize, w: usize) -> String {
    let a = group_norm(g, x, &b.norm1, b.conv1.in_channels, h, w);
    let a = silu(g, &a);
    let a = conv(g, &a, &b.conv1);
    let a = group_norm(g, &a, &b.norm2, b.conv1.out_channels, h, w);
    let a = silu(g, &a);
    let a = conv(g, &a, &b.conv2);
    let skip = match &b.skip {
        Some(s) => conv(g, x, s),
        None => x.to_string(),
    };
    let sum = g.node("Add", &[&skip, &a], vec![], None);
    let scale = g.constant("inv_sqrt2", &[], &[std::f32::consts::FRAC_1_SQRT_2]);
    g.node("Mul", &[&sum, &scale], vec![], None)
}

/// An image model's `g(u, 0)`, `[N, C·H·W]` → `[N, 1]`.
fn image_body(g: &mut Graph, u: &str, cfg: &ImageConfig, p: &DownsamplingParts) -> String {
    let shape = g.int64s(
        "input_shape",
        &[0, cfg.channels as i64, cfg.height as i64, cfg.width as i64],
    );
    let mut x = g.node("Reshape", &[u, &shape], vec![], None);
    x = conv(g, &x, &p.input);
    let (mut h, mut w) = (cfg.height, cfg.width);
    let mut channels = p.input.out_channels;
    for (i, blocks) in p.stages.iter().enumerate() {
        if i > 0 {
            x = g.node(
                "AveragePool",
                &[&x],
                vec![
                    Attr::Ints("kernel_shape", vec![2, 2]),
                    Attr::Ints("strides", vec![2, 2]),
                ],
                None,
            );
            (h, w) = (h / 2, w / 2);
        }
        for block in blocks {
            x = res_block(g, &x, block, h, w);
            channels = block.conv2.out_channels;
        }
    }
    x = group_norm(g, &x, &p.out_norm, channels, h, w);
    x = silu(g, &x);
    let pooled = g.node(
        "ReduceMean",
        &[&x],
        vec![Attr::Ints("axes", vec![2, 3]), Attr::Int("keepdims", 0)],
        None,
    );
    let out = p.head_bias.len();
    // (out, C) stored → (C, out) for MatMul.
    let mut wt = vec![0f32; channels * out];
    for o in 0..out {
        for c in 0..channels {
            wt[c * out + o] = p.head_weight[o * channels + c];
        }
    }
    let wt = g.constant("head_w", &[channels, out], &wt);
    let b = g.constant("head_b", &[out], &p.head_bias);
    let prod = g.node("MatMul", &[&pooled, &wt], vec![], None);
    g.node("Add", &[&prod, &b], vec![], None)
}

/// The ONNX model of `model`'s level-0 energy, for vector and image models.
pub fn energy_graph(model: &Model) -> Result<ModelProto> {
    let meta = model.metadata();
    let net = model.energy_net();
    let (soft_clip_width, gaussian, mixture, body) = if meta.network.image.is_some() {
        let f = net.fold_level0_image()?;
        (
            f.soft_clip,
            f.gaussian,
            f.mixture,
            Body::Image(f.image, Box::new(f.body)),
        )
    } else {
        let f = net.fold_level0()?;
        (f.soft_clip, f.gaussian, f.mixture, Body::Mlp(f.layers))
    };
    let d = model.input_dim();
    let norm = &meta.normalization;
    let mut g = Graph::default();

    let mean = g.constant("mean", &[d], &norm.mean);
    let std = g.constant("std", &[d], &norm.std);
    let centred = g.node("Sub", &[INPUT, &mean], vec![], None);
    let xn = g.node("Div", &[&centred, &std], vec![], None);

    // The base measure's share of the energy, `−b(x)` (none without one).
    let squares = g.node("Mul", &[&xn, &xn], vec![], None);
    let base = match (&gaussian, &mixture) {
        (Some(gauss), _) => {
            let axes = g.int64s("axes", &[1]);
            let norms = g.node(
                "ReduceSum",
                &[&squares, &axes],
                vec![Attr::Int("keepdims", 0)],
                None,
            );
            let coef = g.constant("base_coefficient", &[], &[gauss.coefficient() as f32]);
            Some(g.node("Mul", &[&norms, &coef], vec![], None))
        }
        (None, Some(mix)) => {
            let m = MixtureProduct::new(mix, d);
            let k = m.constants.len();
            let c = g.constant("mixture_constant", &[k], &m.constants);
            let logits = match &m.spherical {
                Some(q) => {
                    let axes = g.int64s("axes", &[1]);
                    let norms = g.node(
                        "ReduceSum",
                        &[&squares, &axes],
                        vec![Attr::Int("keepdims", 1)],
                        None,
                    );
                    let q = g.constant("mixture_quadratic", &[k], q);
                    let quad = g.node("Mul", &[&norms, &q], vec![], None);
                    let offset = g.node("Add", &[&quad, &c], vec![], None);
                    let w = g.constant("mixture_weight", &[d, k], &m.weight);
                    let prod = g.node("MatMul", &[&xn, &w], vec![], None);
                    g.node("Add", &[&offset, &prod], vec![], None)
                }
                None => {
                    let features =
                        g.node("Concat", &[&squares, &xn], vec![Attr::Int("axis", 1)], None);
                    let w = g.constant("mixture_weight", &[2 * d, k], &m.weight);
                    let prod = g.node("MatMul", &[&features, &w], vec![], None);
                    g.node("Add", &[&c, &prod], vec![], None)
                }
            };
            let log_p = g.node(
                "ReduceLogSumExp",
                &[&logits],
                vec![Attr::Ints("axes", vec![1]), Attr::Int("keepdims", 0)],
                None,
            );
            Some(g.node("Neg", &[&log_p], vec![], None))
        }
        (None, None) => None,
    };

    // The soft clip u = x / √(1 + (x/c)²), on the input clamped as the library clamps it.
    let mut h = xn.clone();
    if soft_clip_width > 0.0 {
        let bound = soft_clip_bound(soft_clip_width) as f32;
        let lo = g.constant("clip_min", &[], &[-bound]);
        let hi = g.constant("clip_max", &[], &[bound]);
        let clamped = g.node("Clip", &[&xn, &lo, &hi], vec![], None);
        let sq = g.node("Mul", &[&clamped, &clamped], vec![], None);
        let inv_c2 = g.constant("inv_c2", &[], &[1.0 / (soft_clip_width * soft_clip_width)]);
        let scaled = g.node("Mul", &[&sq, &inv_c2], vec![], None);
        let one = g.constant("one", &[], &[1.0]);
        let s = g.node("Add", &[&scaled, &one], vec![], None);
        let root = g.node("Sqrt", &[&s], vec![], None);
        h = g.node("Div", &[&clamped, &root], vec![], None);
    }
    match &body {
        Body::Image(cfg, parts) => h = image_body(&mut g, &h, cfg, parts),
        Body::Mlp(layers) => {
            for (i, layer) in layers.iter().enumerate() {
                let w = g.constant(
                    &format!("w{i}"),
                    &[layer.in_dim, layer.out_dim],
                    &layer.weight,
                );
                let b = g.constant(&format!("b{i}"), &[layer.out_dim], &layer.bias);
                let prod = g.node("MatMul", &[&h, &w], vec![], None);
                h = g.node("Add", &[&prod, &b], vec![], None);
                if let Some(slope) = layer.slope {
                    // max(v, slope·v) with slope in [0, 1]: LeakyReLU.
                    h = g.node("LeakyRelu", &[&h], vec![Attr::Float("alpha", slope)], None);
                }
            }
        }
    }
    let axes = g.int64s("axes", &[1]);
    let net = g.node("Squeeze", &[&h, &axes], vec![], None);
    match base {
        Some(b) => g.node("Sub", &[&b, &net], vec![], Some(OUTPUT)),
        None => g.node("Neg", &[&net], vec![], Some(OUTPUT)),
    };

    let graph = GraphProto {
        node: g.nodes,
        name: Some("ddaebm_energy".into()),
        initializer: g.initializers,
        doc_string: Some(
            "Level-0 energy E(x) of a ddaebm model: higher = more out-of-distribution.".into(),
        ),
        input: vec![value_info(INPUT, &[None, Some(d)])],
        output: vec![value_info(OUTPUT, &[None])],
    };
    let cal = &meta.calibration;
    let props = [
        ("ddaebm.threshold", format!("{}", cal.threshold)),
        ("ddaebm.target_tpr", format!("{}", cal.target_tpr)),
        ("ddaebm.calibration_rows", format!("{}", cal.num_samples)),
        ("ddaebm.method", meta.method.name().to_string()),
        ("ddaebm.input_dim", d.to_string()),
        ("ddaebm.version", ddaebm::VERSION.to_string()),
    ];
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("ddaebm".into()),
        producer_version: Some(ddaebm::VERSION.into()),
        doc_string: Some(
            "Input x: raw rows [N, d] float32. Output energy: [N] float32; a row is \
             out-of-distribution when its energy exceeds ddaebm.threshold."
                .into(),
        ),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        metadata_props: props
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v),
            })
            .collect(),
    })
}

/// Writes the ONNX model of `model`'s energy to `path` atomically (a temporary file in the same
/// folder, renamed into place).
pub fn export(model: &Model, path: &Path) -> Result<()> {
    let bytes = energy_graph(model)?.encode_to_vec();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("{}: cannot create a file there", dir.display()))?;
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
