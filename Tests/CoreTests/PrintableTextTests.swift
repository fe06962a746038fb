import XCTest
import Core

final class PrintableTextTests: XCTestCase {
    func testControlAndLineBreakingCharactersBecomeVisibleEscapes() {
        let hostile = "a\u{1B}[2Jb\u{07}c\rd\u{85}e\u{2028}f\u{202E}g\u{7F}"
        let shown = PrintableText.escaped(hostile)
        XCTAssertEqual(shown, "a\\u{1b}[2Jb\\u{7}c\\u{d}d\\u{85}e\\u{2028}f\\u{202e}g\\u{7f}")
        XCTAssertFalse(shown.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
    }

    func testOrdinaryTextIsUnchanged() {
        for text in ["dense_1/kernel:0", "ViT-L/14 → probability", "日本語 naïve", ""] {
            XCTAssertEqual(PrintableText.escaped(text), text)
        }
    }
}
