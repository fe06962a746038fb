import Foundation
import XCTest
import Runtime
import TestSupport

/// Ctrl-C and SIGTERM during `score`: the temporary is removed, the output never appears, and
/// the exit code says which signal stopped the run.
final class InterruptTests: XCTestCase {
    func testInterruptedScoreRemovesItsTemporaryAndExits130Or143() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let model = dir.file("hand.safetensors")
        try HandBuilt.binaryModel().write(to: model)
        let rows = 400_000
        let input = try dir.write(NpyArray(shape: [rows, 4], floats: (0..<rows * 4).map { Float($0 % 7) * 0.1 }).serialized(), to: "x.npy")
        for (signal, code) in [(SIGINT, Int32(130)), (SIGTERM, Int32(143))] {
            let output = dir.file("s\(signal).csv")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLI.binary)
            process.arguments = ["score", model, input, "-o", output, "--batch", "1"]
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(30)
            while temporaries(in: dir.path).isEmpty, process.isRunning, Date() < deadline { usleep(2_000) }
            XCTAssertTrue(process.isRunning, "the run ended before it could be interrupted; make the input larger")
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, code)
            XCTAssertEqual(temporaries(in: dir.path), [], "no temporary left behind")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output))
        }
    }

    func temporaries(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.contains(".tmp-") }
    }
}
