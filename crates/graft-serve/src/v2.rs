//! The Open Inference Protocol (KServe V2) on the infer route, both ways. A request's body is
//! read into the images it asks about: JSON with the values in it, or JSON followed by the
//! values as the binary tensor data extension lays them out (`Inference-Header-Content-Length`),
//! which Triton's clients send by default. The answer is built from the probabilities: JSON, or
//! JSON and raw values after it, every probability or (Triton's classification extension) each
//! image's top classes. Both are pure functions, so the fuzzer runs the reading as the server
//! does, and the tests below check both without a server.

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use graft_data::DecodeLimits;
use graft_run::infer::labels;
use serde::Deserialize;

use crate::api::{ApiError, encoded};
use crate::queue::Input;

#[derive(Deserialize)]
pub struct InferRequest {
    /// The client's identifier for the request, which the answer must carry back.
    #[serde(default)]
    pub id: Option<String>,
    pub inputs: Vec<InferInput>,
    /// The outputs a client asks for: the one output there is, or none named (all of them).
    #[serde(default)]
    pub outputs: Vec<RequestedOutput>,
    #[serde(default)]
    pub parameters: RequestParameters,
}

/// A request's parameters that graft reads.
#[derive(Default, Deserialize)]
pub struct RequestParameters {
    /// The binary tensor data extension: every output not asking otherwise comes back as raw
    /// bytes after the JSON.
    pub binary_data_output: Option<bool>,
}

/// An output a request names.
#[derive(Deserialize)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: OutputParameters,
}

/// An output's parameters that graft reads.
#[derive(Default, Deserialize)]
pub struct OutputParameters {
    /// The binary tensor data extension: this output as raw bytes after the JSON (Triton's
    /// clients ask for it by default).
    pub binary_data: Option<bool>,
    /// Triton's classification extension: the top `k` classes of each image instead of every
    /// probability, as BYTES strings `score:index:label` (`tritonclient`'s `class_count`).
    pub classification: Option<usize>,
}

/// The model's one input and one output, as its metadata names them.
pub const INPUT: &str = "input";
pub const OUTPUT: &str = "probabilities";

/// What a V2 infer request asks: its images, and how to answer.
pub struct Asked {
    pub images: Vec<Input>,
    pub answer: Answering,
}

/// How a V2 infer request wants its answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Answering {
    /// The request's `id`, which the answer must carry back.
    pub id: Option<String>,
    /// The values after the JSON as raw bytes (the binary tensor data extension).
    pub binary: bool,
    /// The top classes an image (the classification extension), or `None` for every
    /// probability.
    pub classification: Option<usize>,
}

/// A V2 infer answer: its JSON, and the bytes that follow it where the binary tensor data
/// extension was asked for (the JSON's length then goes in `Inference-Header-Content-Length`).
pub struct Answer {
    pub json: serde_json::Value,
    pub binary: Option<Vec<u8>>,
}

/// Where an answer's values go: in its JSON, or as raw bytes after it.
enum Sent {
    In(serde_json::Value),
    After(Vec<u8>),
}

/// The answer to a request answered as `how`, from each image's probabilities: the JSON of the
/// protocol's infer response, and its values in or after it. A pure function, tested below.
pub fn answer(
    how: &Answering,
    model: &str,
    version: &str,
    classes: &[String],
    probs: &[Vec<f32>],
) -> Answer {
    let n = probs.len();
    // The values as the answer carries them: raw bytes after the JSON, or in it. Only the one
    // asked for is built (1000 probabilities an image as JSON numbers is the costlier form).
    let (datatype, per_image, values) = match how.classification {
        None => {
            let values = if how.binary {
                Sent::After(
                    probs
                        .iter()
                        .flatten()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                )
            } else {
                Sent::In(probs.concat().into())
            };
            ("FP32", classes.len(), values)
        }
        Some(k) => {
            let top: Vec<String> = probs
                .iter()
                .flat_map(|p| labels(classes, p, k))
                .map(|l| format!("{}:{}:{}", l.score, l.index, l.label))
                .collect();
            let per_image = top.len() / n.max(1);
            let values = if how.binary {
                // Each item after its 4-byte little-endian length; a "score:index:label"
                // string is a class name long, far under 4 GiB.
                Sent::After(
                    top.iter()
                        .flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.bytes()))
                        .collect(),
                )
            } else {
                Sent::In(top.into())
            };
            ("BYTES", per_image, values)
        }
    };
    let mut output = serde_json::json!({
        "name": OUTPUT,
        "datatype": datatype,
        "shape": [n, per_image],
    });
    let binary = match values {
        Sent::In(data) => {
            output["data"] = data;
            None
        }
        Sent::After(bytes) => {
            output["parameters"] = serde_json::json!({"binary_data_size": bytes.len()});
            Some(bytes)
        }
    };
    let mut json = serde_json::json!({
        "model_name": model,
        "model_version": version,
        "outputs": [output],
    });
    if let Some(id) = &how.id {
        json["id"] = id.clone().into();
    }
    Answer { json, binary }
}

#[derive(Deserialize)]
pub struct InferInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    /// The values in the JSON; absent when they follow it as binary data.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    #[serde(default)]
    pub parameters: InputParameters,
}

/// An input's parameters that graft reads (others, such as a client's own, are ignored).
#[derive(Default, Deserialize)]
pub struct InputParameters {
    /// The binary tensor data extension: the input's values are this many bytes after the
    /// JSON, not in it.
    pub binary_data_size: Option<usize>,
}

/// Where an input's values are.
enum Values<'a> {
    Json(serde_json::Value),
    /// Raw bytes in the binary tensor data extension's layout: FP32 values little-endian,
    /// BYTES items each after its length (4 bytes, little-endian).
    Binary(&'a [u8]),
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// BYTES items laid out as the binary extension does: a 4-byte little-endian length, then that
/// many bytes, one item after another.
fn length_prefixed(mut bytes: &[u8]) -> Result<Vec<&[u8]>, ApiError> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let i = items.len();
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| bad(format!("BYTES item {i}: its 4-byte length is cut short")))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > rest.len() {
            return Err(bad(format!(
                "BYTES item {i} claims {len} bytes, {} are left",
                rest.len()
            )));
        }
        let (item, rest) = rest.split_at(len);
        items.push(item);
        bytes = rest;
    }
    Ok(items)
}

/// The images of a V2 input: BYTES (image files: base64 strings in JSON, raw in binary data)
/// or FP32 `[N, 3, H, W]`.
fn v2_images(
    input_size: usize,
    limits: DecodeLimits,
    input: &InferInput,
    values: Values<'_>,
) -> Result<Vec<Input>, ApiError> {
    match input.datatype.as_str() {
        "BYTES" => {
            let files: Vec<Vec<u8>> = match values {
                Values::Json(data) => {
                    let items = data
                        .as_array()
                        .ok_or_else(|| bad("BYTES data must be a list of base64 strings"))?;
                    let mut files = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        let text = item
                            .as_str()
                            .ok_or_else(|| bad(format!("item {i} is not a string")))?;
                        files.push(
                            base64::engine::general_purpose::STANDARD
                                .decode(text)
                                .map_err(|e| bad(format!("item {i} is not base64: {e}")))?,
                        );
                    }
                    files
                }
                Values::Binary(bytes) => length_prefixed(bytes)?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect(),
            };
            if input.shape != [files.len()] {
                return Err(bad(format!(
                    "shape {:?} does not match {} items",
                    input.shape,
                    files.len()
                )));
            }
            files
                .into_iter()
                .enumerate()
                .map(|(i, bytes)| encoded(limits, bytes, format!("{}[{i}]", input.name)))
                .collect()
        }
        "FP32" => {
            let s = input_size;
            let [n, 3, h, w] = input.shape[..] else {
                return Err(bad(format!(
                    "FP32 input shape must be [N, 3, {s}, {s}], not {:?}",
                    input.shape
                )));
            };
            if h != s || w != s {
                return Err(bad(format!("FP32 input must be {s}x{s}, not {h}x{w}")));
            }
            // Checked: a shape's product can wrap, and a wrapped one could match the data's
            // length ([2^54, 3, 224, 224] wraps to 0 and passed with no data as no images).
            let needed = n.checked_mul(3 * s * s).ok_or_else(|| {
                bad(format!(
                    "shape {:?} is more values than any request holds",
                    input.shape
                ))
            })?;
            let flat = match values {
                Values::Json(data) => {
                    let values = data
                        .as_array()
                        .ok_or_else(|| bad("FP32 data must be a list of numbers"))?;
                    if values.len() != needed {
                        return Err(bad(format!(
                            "shape {:?} needs {needed} values, found {}",
                            input.shape,
                            values.len()
                        )));
                    }
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| match v.as_f64().map(|x| x as f32) {
                            // 1e39 is a JSON number but infinite as an f32: the scores would
                            // be NaN.
                            Some(x) if x.is_finite() => Ok(x),
                            Some(_) => {
                                Err(bad(format!("FP32 value {i} ({v}) is beyond f32's range")))
                            }
                            None => Err(bad(format!("FP32 value {i} ({v}) is not a number"))),
                        })
                        .collect::<Result<Vec<f32>, ApiError>>()?
                }
                Values::Binary(bytes) => {
                    if needed.checked_mul(4) != Some(bytes.len()) {
                        return Err(bad(format!(
                            "shape {:?} needs {needed} FP32 values, the binary data holds {} bytes",
                            input.shape,
                            bytes.len()
                        )));
                    }
                    let flat: Vec<f32> = bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    if let Some(i) = flat.iter().position(|x| !x.is_finite()) {
                        return Err(bad(format!("FP32 value {i} ({}) is not finite", flat[i])));
                    }
                    flat
                }
            };
            Ok(flat
                .chunks(3 * s * s)
                .map(|image| Input::Pixels(image.to_vec()))
                .collect())
        }
        other => Err(bad(format!(
            "datatype {other:?}: use BYTES (encoded images) or FP32"
        ))),
    }
}

/// The `Inference-Header-Content-Length` header of the binary tensor data extension: how many
/// of the body's bytes are JSON (the rest are inputs' values). `None` when absent.
pub fn json_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    let Some(v) = headers.get("inference-header-content-length") else {
        return Ok(None);
    };
    let n = v.to_str().ok().and_then(|v| v.trim().parse().ok());
    n.map(Some).ok_or_else(|| {
        bad(format!(
            "Inference-Header-Content-Length {v:?} is not a byte count"
        ))
    })
}

/// The images a V2 infer request's body asks about and how it wants its answer, or the 400
/// (422 for an image whose header does not decode) it gets: all that the server does with a
/// body before queueing it, a pure function of its bytes (graft-fuzz's `v2_request` target runs it). `json_length`: the
/// binary tensor data extension's header, when the request has one ([`json_length`]); the
/// bytes after the JSON hold the values of the inputs that give a `binary_data_size`, in order.
pub fn infer_images(
    body: &[u8],
    json_length: Option<usize>,
    input_size: usize,
    limits: DecodeLimits,
) -> Result<Asked, ApiError> {
    let (json, binary) = match json_length {
        None => (body, &[][..]),
        Some(n) => body.split_at_checked(n).ok_or_else(|| {
            bad(format!(
                "Inference-Header-Content-Length is {n}, past the body's {} bytes",
                body.len()
            ))
        })?,
    };
    let request: InferRequest =
        serde_json::from_slice(json).map_err(|e| bad(format!("malformed V2 request: {e}")))?;
    if let Some(other) = request.outputs.iter().find(|o| o.name != OUTPUT) {
        // An answer without the output asked for would be read as something it is not (a
        // client asking for "logits" and given probabilities).
        return Err(bad(format!(
            "no output {:?}; this model has {OUTPUT:?}",
            other.name
        )));
    }
    // The one output there is, where the request names it.
    let asked_for = request.outputs.first().map(|o| &o.parameters);
    // An output's own parameter wins over the request's, as in Triton.
    let binary_output = asked_for
        .and_then(|p| p.binary_data)
        .or(request.parameters.binary_data_output)
        .unwrap_or(false);
    let classification = asked_for.and_then(|p| p.classification);
    if classification == Some(0) {
        return Err(bad("classification must ask for at least 1 class"));
    }
    let mut inputs = request.inputs.into_iter();
    let mut input = inputs
        .next()
        .ok_or_else(|| bad("a V2 request needs one input"))?;
    if inputs.next().is_some() {
        return Err(bad("this model takes one input"));
    }
    if input.name != INPUT {
        // As Triton does: a client that names another input was written for another model.
        return Err(bad(format!(
            "no input {:?}; this model has {INPUT:?}",
            input.name
        )));
    }
    let values = match (input.data.take(), input.parameters.binary_data_size) {
        (Some(data), None) => Values::Json(data),
        (None, Some(size)) if json_length.is_none() => {
            return Err(bad(format!(
                "input {:?} has binary_data_size {size} but the request no \
                 Inference-Header-Content-Length header",
                input.name
            )));
        }
        (None, Some(size)) if size == binary.len() => Values::Binary(binary),
        (None, Some(size)) => {
            return Err(bad(format!(
                "input {:?} has binary_data_size {size}, the body {} bytes after its JSON",
                input.name,
                binary.len()
            )));
        }
        (Some(_), Some(_)) => {
            return Err(bad(format!(
                "input {:?} has both data and binary_data_size",
                input.name
            )));
        }
        (None, None) => return Err(bad(format!("input {:?} has no data", input.name))),
    };
    if matches!(values, Values::Json(_)) && !binary.is_empty() {
        return Err(bad(format!(
            "{} bytes follow the JSON, but no input has binary_data_size",
            binary.len()
        )));
    }
    let images = v2_images(input_size, limits, &input, values)?;
    Ok(Asked {
        images,
        answer: Answering {
            id: request.id,
            binary: binary_output,
            classification,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request of one input whose values follow the JSON; the JSON's length.
    fn binary(datatype: &str, shape: &str, values: &[u8], size: usize) -> (Vec<u8>, usize) {
        let head = format!(
            r#"{{"inputs":[{{"name":"input","shape":{shape},"datatype":"{datatype}","parameters":{{"binary_data_size":{size}}}}}]}}"#
        );
        let mut body = head.clone().into_bytes();
        body.extend_from_slice(values);
        (body, head.len())
    }

    fn reason(body: &[u8], json_length: Option<usize>) -> String {
        match infer_images(body, json_length, 2, DecodeLimits::default()) {
            Ok(asked) => panic!("{} images from a bad request", asked.images.len()),
            Err(e) => {
                assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
                e.message
            }
        }
    }

    #[test]
    fn answers_in_json_in_binary_and_as_top_classes() {
        let classes = ["ants".to_string(), "bees".to_string(), "wasps".to_string()];
        let probs = [vec![0.25f32, 0.5, 0.25], vec![0.75, 0.125, 0.125]];
        let answer = |how: Answering| answer(&how, "m", "1", &classes, &probs);
        let plain = answer(Answering::default());
        let out = &plain.json["outputs"][0];
        assert_eq!(out["datatype"], "FP32");
        assert_eq!(out["shape"], serde_json::json!([2, 3]));
        assert_eq!(out["data"][4], 0.125);
        assert!(plain.binary.is_none() && plain.json.get("id").is_none());
        let binary = answer(Answering {
            binary: true,
            id: Some("r1".into()),
            ..Answering::default()
        });
        let bytes = binary.binary.expect("binary values");
        assert_eq!(bytes.len(), 24);
        assert_eq!(bytes[4..8], 0.5f32.to_le_bytes());
        let out = &binary.json["outputs"][0];
        assert_eq!(out["parameters"]["binary_data_size"], 24);
        assert!(out.get("data").is_none());
        assert_eq!(binary.json["id"], "r1");
        // Top classes, ties to the lower index, as `graft predict` and /v1/predict rank them.
        let top = answer(Answering {
            classification: Some(2),
            ..Answering::default()
        });
        let out = &top.json["outputs"][0];
        assert_eq!(out["datatype"], "BYTES");
        assert_eq!(out["shape"], serde_json::json!([2, 2]));
        assert_eq!(
            out["data"],
            serde_json::json!(["0.5:1:bees", "0.25:0:ants", "0.75:0:ants", "0.125:1:bees"])
        );
        // More classes than the model has: all of them.
        let all = answer(Answering {
            classification: Some(9),
            ..Answering::default()
        });
        assert_eq!(all.json["outputs"][0]["shape"], serde_json::json!([2, 3]));
        let top_binary = answer(Answering {
            classification: Some(1),
            binary: true,
            ..Answering::default()
        });
        let mut want = 10u32.to_le_bytes().to_vec();
        want.extend_from_slice(b"0.5:1:bees");
        want.extend_from_slice(&11u32.to_le_bytes());
        want.extend_from_slice(b"0.75:0:ants");
        assert_eq!(top_binary.binary, Some(want));
    }

    #[test]
    fn binary_outputs_when_the_output_or_else_the_request_asks() {
        // How a valid FP32 request with these outputs and parameters wants its answer.
        let answering = |outputs: &str, parameters: &str| {
            let zeros = ["0"; 12].join(",");
            let body = format!(
                r#"{{"inputs":[{{"name":"input","shape":[1,3,2,2],"datatype":"FP32","data":[{zeros}]}}]{outputs}{parameters}}}"#
            );
            infer_images(body.as_bytes(), None, 2, DecodeLimits::default())
                .map(|a| a.answer)
                .map_err(|e| e.message)
        };
        let asked = |outputs: &str, parameters: &str| match answering(outputs, parameters) {
            Ok(a) => a.binary,
            Err(e) => panic!("{outputs}{parameters}: {e}"),
        };
        // The output named, with these parameters.
        let named = |parameters: String| {
            format!(r#","outputs":[{{"name":"probabilities","parameters":{parameters}}}]"#)
        };
        let output = |binary: bool| named(format!(r#"{{"binary_data":{binary}}}"#));
        let request = |binary: bool| format!(r#","parameters":{{"binary_data_output":{binary}}}"#);
        assert!(!asked("", ""), "JSON unless asked");
        assert!(asked(&output(true), ""));
        assert!(asked("", &request(true)));
        assert!(!asked(r#","outputs":[{"name":"probabilities"}]"#, ""));
        let classes = |outputs: &str| answering(outputs, "").map(|a| a.classification);
        assert_eq!(classes(""), Ok(None));
        let top = |k: usize| named(format!(r#"{{"classification":{k}}}"#));
        assert_eq!(classes(&top(3)), Ok(Some(3)));
        assert!(classes(&top(0)).is_err_and(|e| e.contains("at least 1 class")));
        // The output's own parameter wins over the request's.
        assert!(!asked(&output(false), &request(true)));
        assert!(asked(&output(true), &request(false)));
    }

    #[test]
    fn bytes_items_after_their_lengths() {
        let mut data = 2u32.to_le_bytes().to_vec();
        data.extend_from_slice(b"ab");
        data.extend_from_slice(&0u32.to_le_bytes());
        let items = length_prefixed(&data).ok();
        assert_eq!(items, Some(vec![&b"ab"[..], &b""[..]]));
        let short = |d: &[u8]| length_prefixed(d).err().map(|e| e.message);
        assert!(short(&[1, 0]).is_some_and(|m| m.contains("cut short")));
        assert!(short(&[5, 0, 0, 0, 1]).is_some_and(|m| m.contains("claims 5 bytes, 1 are left")));
    }

    #[test]
    fn fp32_values_after_the_json() {
        let values: Vec<u8> = (0..12)
            .flat_map(|i| (i as f32 / 12.0).to_le_bytes())
            .collect();
        let (body, n) = binary("FP32", "[1,3,2,2]", &values, values.len());
        let asked = infer_images(&body, Some(n), 2, DecodeLimits::default());
        match asked.as_ref().map(|a| &a.images[..]) {
            Ok([Input::Pixels(p)]) => {
                assert_eq!(p[..], (0..12).map(|i| i as f32 / 12.0).collect::<Vec<_>>())
            }
            _ => panic!("one image of 12 values"),
        }
        let mut nan = values.clone();
        nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        let (body, n) = binary("FP32", "[1,3,2,2]", &nan, nan.len());
        assert!(reason(&body, Some(n)).contains("FP32 value 1 (NaN) is not finite"));
        let (body, n) = binary("FP32", "[1,3,2,2]", &values[..44], 44);
        assert!(reason(&body, Some(n)).contains("the binary data holds 44 bytes"));
    }

    #[test]
    fn every_disagreement_between_header_json_and_bytes_is_named() {
        let (body, n) = binary("FP32", "[1,3,2,2]", &[0; 48], 48);
        assert!(reason(&body, Some(body.len() + 1)).contains("past the body's"));
        assert!(reason(&body[..n], None).contains("no Inference-Header-Content-Length"));
        let (body, n) = binary("FP32", "[1,3,2,2]", &[0; 48], 40);
        assert!(reason(&body, Some(n)).contains("binary_data_size 40, the body 48 bytes"));
        let json =
            br#"{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["AA=="]}]}"#;
        let mut trailing = json.to_vec();
        trailing.extend_from_slice(b"junk");
        assert!(reason(&trailing, Some(json.len())).contains("4 bytes follow the JSON"));
        let none = br#"{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES"}]}"#;
        assert!(reason(none, None).contains("has no data"));
        let logits = br#"{"inputs":[{"name":"input","shape":[1],"datatype":"BYTES","data":["AA=="]}],"outputs":[{"name":"logits"}]}"#;
        assert!(
            reason(logits, None).contains("no output \"logits\"; this model has \"probabilities\"")
        );
        let images =
            br#"{"inputs":[{"name":"images","shape":[1],"datatype":"BYTES","data":["AA=="]}]}"#;
        assert!(reason(images, None).contains("no input \"images\"; this model has \"input\""));
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("Inference-Header-Content-Length", v.parse().expect("value"));
            json_length(&h).map_err(|e| e.message)
        };
        assert_eq!(header("17"), Ok(Some(17)));
        assert!(header("-1").is_err_and(|m| m.contains("not a byte count")));
        assert_eq!(json_length(&HeaderMap::new()).ok(), Some(None));
    }
}
