//! QR decoding for Hush's camera join: finds and decodes a QR code in an RGBA camera frame.
//!
//! Its own wasm module (`www/pkg/scan.js`), because the Reed–Solomon tables of the decoder
//! weigh about 64 KiB that only someone joining by camera needs.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use thiserror::Error;
use wasm_bindgen::prelude::*;

/// Largest frame side accepted by [`decode_rgba`], in pixels (bounds memory and time).
pub const MAX_FRAME_SIDE: u32 = 4096;

/// Why a frame could not be scanned.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScanError {
    /// The frame's dimensions do not match its pixel buffer, or exceed [`MAX_FRAME_SIDE`].
    #[error("bad frame dimensions")]
    BadFrame,
}

/// Decodes a QR code from an RGBA frame (`ImageData.data`); `null` if none is readable.
#[wasm_bindgen(js_name = decodeQr)]
pub fn decode_qr(width: u32, height: u32, rgba: &[u8]) -> Result<Option<String>, JsError> {
    decode_rgba(width, height, rgba).map_err(|e| JsError::new(&e.to_string()))
}

/// Decodes the first QR code found in an RGBA frame (as from `CanvasRenderingContext2D.
/// getImageData`), returning its text, or `None` if no readable code is in view.
pub fn decode_rgba(width: u32, height: u32, rgba: &[u8]) -> Result<Option<String>, ScanError> {
    if width == 0 || height == 0 || width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
        return Err(ScanError::BadFrame);
    }
    let (w, h) = (width as usize, height as usize);
    if rgba.len() != w * h * 4 {
        return Err(ScanError::BadFrame);
    }
    // ITU-R BT.601 luma in integer arithmetic.
    let luma: Vec<u8> = rgba
        .chunks_exact(4)
        .map(|p| match p {
            [r, g, b, _] => {
                ((299 * u32::from(*r) + 587 * u32::from(*g) + 114 * u32::from(*b)) / 1000) as u8
            }
            _ => 0,
        })
        .collect();
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        luma.get(y * w + x).copied().unwrap_or(255)
    });
    for grid in image.detect_grids() {
        if let Ok((_meta, text)) = grid.decode() {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use qrcode::{EcLevel, QrCode};

    /// Rasterises a code at `scale` pixels per module into RGBA, with a 4-module margin.
    fn raster(text: &str, scale: usize) -> (u32, u32, Vec<u8>) {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        let n = code.width();
        let side = (n + 8) * scale;
        let mut rgba = vec![255u8; side * side * 4];
        for y in 0..n {
            for x in 0..n {
                if code[(x, y)] == qrcode::Color::Dark {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = ((y + 4) * scale + dy) * side + (x + 4) * scale + dx;
                            rgba[px * 4..px * 4 + 3].copy_from_slice(&[0, 0, 0]);
                        }
                    }
                }
            }
        }
        (side as u32, side as u32, rgba)
    }

    #[test]
    fn encodes_and_decodes_an_invite_link() {
        let link = "https://hush.example/#i=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdEfGhIjKlMnOpQr";
        let (w, h, rgba) = raster(link, 4);
        assert_eq!(decode_rgba(w, h, &rgba).unwrap().as_deref(), Some(link));
    }

    #[test]
    fn blank_frame_has_no_code_and_bad_frames_are_errors() {
        assert_eq!(decode_rgba(64, 64, &vec![255; 64 * 64 * 4]).unwrap(), None);
        assert_eq!(
            decode_rgba(64, 64, &[0; 10]).unwrap_err(),
            ScanError::BadFrame
        );
        assert_eq!(decode_rgba(0, 64, &[]).unwrap_err(), ScanError::BadFrame);
        assert_eq!(
            decode_rgba(5000, 1, &vec![0; 5000 * 4]).unwrap_err(),
            ScanError::BadFrame
        );
    }
}
