import Foundation
import XCTest
import Inspect

final class TextLayoutTests: XCTestCase {
    func testWrapKeepsEveryLineWithinWidthAndLosesNoWord() {
        let text = (0..<60).map { "word\($0)" }.joined(separator: " ")
        let lines = TextLayout.wrap(text, width: 30, indent: 4)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 30 })
        XCTAssertTrue(lines.dropFirst().allSatisfy { $0.hasPrefix("    ") })
        XCTAssertEqual(lines.joined(separator: " ").split(separator: " ").joined(separator: " "), text)
    }

    func testWrapCutsAWordLongerThanALine() {
        let lines = TextLayout.wrap(String(repeating: "x", count: 100), width: 40)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 40 })
        XCTAssertEqual(lines.joined().filter { $0 == "x" }.count, 100)
    }

    func testTableAlignsColumnsAndCutsTheFlexibleColumnToFit() {
        var table = TextTable([.init("name"), .init("n", .right)], flexible: 0)
        table.add([String(repeating: "a", count: 120), "1"])
        table.add(["b", "12345"])
        let lines = table.render(width: 80)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 80 }, lines.joined(separator: "\n"))
        XCTAssertTrue(lines[1].contains("…"))
        XCTAssertTrue(lines[2].hasSuffix("12345"))
        XCTAssertEqual(lines[1].count, lines[2].count)
    }

    func testTableNotesWrapUnderTheRow() {
        var table = TextTable([.init("#", .right), .init("name")])
        table.add(["0", "norm"], notes: [String(repeating: "note ", count: 40)])
        let lines = table.render(width: 50)
        XCTAssertGreaterThan(lines.count, 3)
        XCTAssertTrue(lines.allSatisfy { $0.count <= 50 })
        XCTAssertTrue(lines[2].hasPrefix("   note"))
    }

    func testColourOnlyOnATerminalWithoutNoColor() {
        XCTAssertTrue(Colour.enabled(isTerminal: true, environment: [:]))
        XCTAssertFalse(Colour.enabled(isTerminal: false, environment: [:]))
        XCTAssertFalse(Colour.enabled(isTerminal: true, environment: ["NO_COLOR": "1"]))
        // no-color.org: an empty NO_COLOR does not disable colour.
        XCTAssertTrue(Colour.enabled(isTerminal: true, environment: ["NO_COLOR": ""]))
        XCTAssertFalse(Colour.enabled(isTerminal: true, environment: ["TERM": "dumb"]))
    }

    func testStylerAddsEscapesOnlyWhenEnabled() {
        XCTAssertEqual(Styler(enabled: false).bold("x"), "x")
        XCTAssertTrue(Styler(enabled: true).bold("x").contains("\u{1B}["))
    }

    func testGroupedDigits() {
        XCTAssertEqual(InspectText.grouped(0), "0")
        XCTAssertEqual(InspectText.grouped(16416), "16,416")
        XCTAssertEqual(InspectText.grouped(1_049_600), "1,049,600")
        XCTAssertEqual(InspectText.grouped(-1234), "-1,234")
    }
}
