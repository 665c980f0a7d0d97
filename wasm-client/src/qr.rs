//! QR codes for invites, rendered to SVG in Rust so the site needs no third-party script and
//! the invite never leaves the page. Decoding camera frames lives in the separate `qr-scan`
//! module (`wasm-client/scan`), loaded only when someone joins by camera.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use thiserror::Error;

/// Why a QR operation failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum QrError {
    /// The text is too long for any QR version at the chosen error-correction level.
    #[error("the text is too long for a QR code")]
    TooLong,
}

/// The QR code of `text` as a standalone SVG document (dark modules on white, with the
/// standard 4-module quiet zone), at error-correction level M.
pub fn to_svg(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|_| QrError::TooLong)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .dark_color(svg::Color("#111111"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_document() {
        let svg = to_svg("https://hush.example/#AbCd").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
    }

    #[test]
    fn too_long_text_is_an_error() {
        assert_eq!(to_svg(&"x".repeat(5000)).unwrap_err(), QrError::TooLong);
    }
}
