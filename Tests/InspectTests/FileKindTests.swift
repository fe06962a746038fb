import Foundation
import XCTest
import Converters
import Inspect
import Runtime
import TestSupport

/// `FormatRegistry` identifies every kind from the bytes alone; names and extensions play no part.
final class FileKindTests: XCTestCase {
    func kind(_ file: String) throws -> FileKind {
        try FormatRegistry.identify(try MappedFile.map(try Fixtures.modelFile(file)))
    }

    func testIdentifiesEveryUpstreamFileFromItsBytes() throws {
        XCTAssertEqual(try kind("clip_autokeras_nsfw_b32.zip"), .savedModelZip)
        XCTAssertEqual(try kind("clip_autokeras_binary_nsfw.zip"), .savedModelZip)
        XCTAssertEqual(try kind("clip_ViT-B-32_openai_binary_nsfw_head.pth"), .torchZip)
        XCTAssertEqual(try kind("h14_nsfw.pth"), .torchZip)
        XCTAssertEqual(try kind("h14_nsfw_legacy.pth"), .torchLegacy)
        XCTAssertEqual(try kind("violence_detection_vit_b_32.npy"), .npy)
        XCTAssertEqual(try kind("clip_autokeras_nsfw_b32_dense.h5"), .kerasH5)
        XCTAssertEqual(try kind("clip_autokeras_nsfw_b32_dense.keras"), .kerasV3)
        XCTAssertEqual(try FormatRegistry.identify(try MappedFile.map(Fixtures.reference("h14_nsfw.npz"))), .npz)
    }

    func testIdentifiesNativeAndPlainSafetensors() throws {
        XCTAssertEqual(try FormatRegistry.identify(try HandBuilt.binaryModel().serialized()), .native)
        let plain = try SafetensorsFile(metadata: [:], tensors: [Tensor(name: "w", shape: [2], floats: [1, 2])]).serialized()
        XCTAssertEqual(try FormatRegistry.identify(plain), .safetensors)
    }

    func testZipOfOtherMembersIsAPlainZip() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("other.zip")
        try ZipArchive.write(members: [(name: "readme.txt", data: Data("hello".utf8))], to: path)
        XCTAssertEqual(try FormatRegistry.identify(try MappedFile.map(path)), .zip)
    }

    func testRejectsUnknownBytesNamingThem() {
        XCTAssertThrowsError(try FormatRegistry.identify(Data("# a markdown file\n".utf8))) { error in
            let e = error as? ClipSafetyError
            XCTAssertEqual(e?.kind, .unsupported)
            XCTAssertTrue(e?.message.contains("23 20 61 20") == true, e?.message ?? "")
        }
    }

    func testRejectsEmptyFile() {
        XCTAssertThrowsError(try FormatRegistry.identify(Data())) { error in
            XCTAssertTrue((error as? ClipSafetyError)?.message.contains("empty") == true)
        }
    }

    func testExtensionDoesNotDecide() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let bytes = try MappedFile.map(try Fixtures.modelFile("clip_ViT-B-32_openai_binary_nsfw_head.pth"))
        let lying = try dir.write(bytes, to: "weights.npy")
        let report = try FileSummary.inspect(path: lying)
        XCTAssertEqual(report.format.id, "torch-zip")
        XCTAssertEqual(report.model?.card.embeddingDim, 512)
    }

    func testUnknownFileIsRefusedByInspect() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = try dir.write(Data(repeating: 7, count: 100), to: "model.safetensors")
        XCTAssertThrowsError(try FileSummary.inspect(path: path)) { error in
            XCTAssertEqual((error as? ClipSafetyError)?.kind, .unsupported)
        }
    }
}
