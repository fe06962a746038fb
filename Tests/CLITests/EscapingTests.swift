import Foundation
import XCTest
import TestSupport

/// Names a file controls reach the terminal escaped: a tensor named with an escape sequence
/// cannot clear the screen or forge a line, in tables or in error messages.
final class EscapingTests: XCTestCase {
    func testTensorNamesWithControlCharactersAreEscapedInInspectAndErrors() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let header = Data(#"{"\u001b[2J\u2028evil":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8)
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(header)
        bytes.append(contentsOf: [0, 0, 128, 63])
        let path = try dir.write(bytes, to: "hostile.safetensors")

        let inspect = try CLI.run(["inspect", path])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("\\u{1b}[2J\\u{2028}evil"), inspect.stdout)
        XCTAssertFalse(inspect.stdout.contains("\u{1B}[2J") || inspect.stdout.contains("\u{2028}"))

        let convert = try CLI.run(["convert", path, "-o", dir.file("out.safetensors"), "--arch", "linear:\u{1B}[2Jmissing"])
        XCTAssertNotEqual(convert.status, 0)
        XCTAssertFalse(convert.stderr.contains("\u{1B}"), convert.stderr)
        XCTAssertEqual(convert.stderr.split(separator: "\n").count, 1, convert.stderr)
    }
}
