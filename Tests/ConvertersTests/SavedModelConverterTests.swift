import Foundation
import Runtime
import TestSupport
import XCTest

@testable import Converters

/// The SavedModel zip converter against LAION's real autokeras zips: container parsing,
/// checksum verification, the vocabulary → column trace, reference outputs, refusals.
final class SavedModelConverterTests: XCTestCase {
    static let b32 = "clip_autokeras_nsfw_b32"
    static let l14 = "clip_autokeras_binary_nsfw"

    // MARK: helpers

    func zipBytes(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: try Fixtures.modelFile(name + ".zip")))
    }

    /// The zip's members, by name.
    func members(_ zip: Data) throws -> [(name: String, data: Data)] {
        let archive = try ZipArchive(bytes: zip)
        return try archive.entries.filter { !$0.name.hasSuffix("/") }.map { ($0.name, try archive.read($0)) }
    }

    func member(_ zip: Data, suffix: String) throws -> Data {
        let all = try members(zip)
        return try XCTUnwrap(all.first { $0.name.hasSuffix(suffix) }?.data, "no member ending in \(suffix)")
    }

    /// The zip rebuilt in memory (through a temporary file) with one member's bytes changed.
    func rebuilt(_ zip: Data, suffix: String, change: (inout Data) throws -> Void) throws -> Data {
        var all = try members(zip)
        let i = try XCTUnwrap(all.firstIndex { $0.name.hasSuffix(suffix) })
        try change(&all[i].data)
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try ZipArchive.write(members: all, to: dir.file("m.zip"))
        return try Data(contentsOf: URL(fileURLWithPath: dir.file("m.zip")))
    }

    func convert(_ bytes: Data, fileName: String, limits: ReaderLimits = .init()) throws -> NativeModel {
        try convertModel(bytes: bytes, options: ConversionOptions(fileName: fileName, limits: limits))
    }

    func assertThrows(_ kind: ClipSafetyError.Kind, containing text: String, file: StaticString = #filePath, line: UInt = #line,
                      _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected a \(kind) error mentioning '\(text)'", file: file, line: line)
        } catch let e as ClipSafetyError {
            XCTAssertEqual(e.kind, kind, "\(e.message)", file: file, line: line)
            XCTAssertTrue(e.message.contains(text), "message '\(e.message)' does not mention '\(text)'", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    /// Max |ours - reference| and the number of rows whose decision at 0.5 differs.
    func compare(_ model: NativeModel, reference: String) throws -> (maxError: Float, flipped: Int, rows: Int) {
        let npz = try NpzArchive.read(contentsOf: Fixtures.reference(reference + ".npz"))
        let inputs = try XCTUnwrap(npz["inputs"])
        let expected = try XCTUnwrap(npz["outputs"]).floatValues()
        XCTAssertEqual(inputs.dtype, .f8, "SavedModel references are float64 (the serving input type)")
        let rows = inputs.shape[0]
        let scorer = try Scorer(model: model)
        let result = try inputs.withRows(0, rows) { try scorer.score($0) }
        XCTAssertEqual(result.scores.count, expected.count)
        var maxError: Float = 0
        var flipped = 0
        for (a, b) in zip(result.scores, expected) {
            maxError = max(maxError, abs(a - b))
            if (a > 0.5) != (b > 0.5) { flipped += 1 }
        }
        return (maxError, flipped, rows)
    }

    /// C `%f`, the key rule of `categorical_lookup`.
    func percentF(_ x: Double) -> String { String(format: "%f", x) }

    // MARK: checksums and containers

    func testCRC32CMatchesTheStandardCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Data("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.unmask(CRC32C.mask(0x1234_5678)), 0x1234_5678)
        XCTAssertEqual(CRC32C.mask(0), 0xA282_EAD8)
    }

    func testSSTableParsesTheRealIndex() throws {
        let index = try member(try zipBytes(Self.b32), suffix: "variables/variables.index")
        let table = try SSTableReader(bytes: index, limits: ReaderLimits())
        let keys = table.entries.map { String(decoding: $0.key, as: UTF8.self) }
        XCTAssertEqual(keys.first, "", "the bundle header is stored under the empty key")
        XCTAssertEqual(keys, keys.sorted(), "keys come out in order")
        XCTAssertTrue(keys.contains("layer_with_weights-2/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
        XCTAssertTrue(keys.contains("_CHECKPOINTABLE_OBJECT_GRAPH"))
        XCTAssertEqual(keys.count, 21)
        // Keys share prefixes in the file: the prefix compression was undone.
        XCTAssertEqual(keys.filter { $0.hasPrefix("layer_with_weights-0/encoding_layers/") }.count, 6)
    }

    func testBundleReadsRealTensorsWithShapesAndChecksums() throws {
        let zip = try zipBytes(Self.l14)
        let bundle = try TensorBundleReader(index: try member(zip, suffix: "variables.index"),
                                            shards: [try member(zip, suffix: "variables.data-00000-of-00001")], limits: ReaderLimits())
        let kernel = try XCTUnwrap(bundle.entry(named: "layer_with_weights-4/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
        XCTAssertEqual(kernel.dtype, .f32)
        XCTAssertEqual(kernel.shape, [512, 256])
        XCTAssertEqual(kernel.size, 512 * 256 * 4)
        let objectGraph = try XCTUnwrap(bundle.entry(named: "_CHECKPOINTABLE_OBJECT_GRAPH"))
        XCTAssertNil(objectGraph.dtype, "string tensors are verified but not numeric")
        XCTAssertEqual(objectGraph.typeName, "string")
        let bias = try bundle.tensor("layer_with_weights-5/bias/.ATTRIBUTES/VARIABLE_VALUE", as: "b")
        XCTAssertEqual(bias.shape, [1])
        XCTAssertTrue(try bias.floatValues()[0].isFinite)
    }

    func testBundleReportsAFlippedDataByteAsCorruptionNamingTheTensor() throws {
        let zip = try zipBytes(Self.b32)
        let index = try member(zip, suffix: "variables.index")
        var data = try member(zip, suffix: "variables.data-00000-of-00001")
        // layer_with_weights-2/kernel occupies bytes 4104..<69640 of the data file.
        data[data.startIndex + 5000] ^= 0x01
        assertThrows(.malformed, containing: "layer_with_weights-2/kernel/.ATTRIBUTES/VARIABLE_VALUE' is corrupt") {
            _ = try TensorBundleReader(index: index, shards: [data], limits: ReaderLimits())
        }
    }

    func testConvertRefusesAZipWhoseDataFileHasAFlippedByte() throws {
        let corrupt = try rebuilt(try zipBytes(Self.b32), suffix: "variables.data-00000-of-00001") { data in
            data[data.startIndex + 100] ^= 0x80  // inside layer_with_weights-1/mean
        }
        assertThrows(.malformed, containing: "layer_with_weights-1/mean/.ATTRIBUTES/VARIABLE_VALUE' is corrupt") {
            _ = try self.convert(corrupt, fileName: "x.zip")
        }
    }

    func testBundleRejectsATruncatedDataFile() throws {
        let zip = try zipBytes(Self.b32)
        let data = try member(zip, suffix: "variables.data-00000-of-00001")
        assertThrows(.truncated, containing: "past the end") {
            _ = try TensorBundleReader(index: try self.member(zip, suffix: "variables.index"), shards: [data.prefix(70_000)], limits: ReaderLimits())
        }
    }

    func testSSTableRejectsABadMagicNumber() throws {
        var index = try member(try zipBytes(Self.b32), suffix: "variables.index")
        index[index.endIndex - 1] ^= 0xff
        assertThrows(.malformed, containing: "magic") { _ = try SSTableReader(bytes: index, limits: ReaderLimits()) }
    }

    func testSSTableRejectsACorruptBlock() throws {
        var index = try member(try zipBytes(Self.b32), suffix: "variables.index")
        index[index.startIndex + 40] ^= 0x20  // inside the data block's keys
        assertThrows(.malformed, containing: "crc32c mismatch") { _ = try SSTableReader(bytes: index, limits: ReaderLimits()) }
    }

    func testSSTableRejectsEveryPrefixOfTheRealIndexWithoutCrashing() throws {
        let index = try member(try zipBytes(Self.b32), suffix: "variables.index")
        for n in 0..<index.count {
            XCTAssertThrowsError(try SSTableReader(bytes: index.prefix(n), limits: ReaderLimits()), "prefix of \(n) bytes")
        }
    }

    func testSSTableBlockRejectsSharedPrefixLongerThanThePreviousKey() {
        // One entry: shared 3 (no previous key), unshared 1, value 0, key "a"; restarts [0], count 1.
        let block = Data([3, 1, 0, 0x61, 0, 0, 0, 0, 1, 0, 0, 0])
        assertThrows(.malformed, containing: "shares") { var decoded = 0; _ = try SSTableReader.entries(ofBlock: block, what: "test block", limits: ReaderLimits(), decoded: &decoded) }
    }

    func testSSTableBlockRejectsARestartCountLargerThanTheBlock() {
        let block = Data([0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f])
        assertThrows(.malformed, containing: "restart points") { var decoded = 0; _ = try SSTableReader.entries(ofBlock: block, what: "test block", limits: ReaderLimits(), decoded: &decoded) }
    }

    // MARK: vocabularies

    func testVocabulariesAreTracedToTheirColumnsB32() throws {
        let saved = try member(try zipBytes(Self.b32), suffix: "saved_model.pb")
        let v = try SavedModelVocabularies(savedModel: saved, limits: .init())
        XCTAssertEqual(v.inputWidth, 512)
        XCTAssertEqual(v.vocabularies.map(\.column), [92, 133, 312])
        XCTAssertEqual(v.vocabularies.map(\.keys.count), [1566, 747, 745])
        XCTAssertEqual(v.vocabularies.map(\.keysNode), ["Const_8", "Const_10", "Const_12"])
        XCTAssertEqual(v.vocabularies.map(\.valuesNode), ["Const_9", "Const_11", "Const_13"])
        XCTAssertEqual(v.vocabularies.map(\.oovIndex), [0, 0, 0])
        XCTAssertEqual(v.vocabularies.map(\.keyDType), [.f32, .f32, .f32], "the graph casts the input to float32 before AsString")
        XCTAssertEqual(String(decoding: v.vocabularies[0].keys[0], as: UTF8.self), "-0.562500")
        XCTAssertEqual(v.vocabularies[0].values.min(), 1, "vocabulary indices start at 1; 0 is out-of-vocabulary")
    }

    func testVocabulariesAreTracedToTheirColumnsL14() throws {
        let saved = try member(try zipBytes(Self.l14), suffix: "saved_model.pb")
        let v = try SavedModelVocabularies(savedModel: saved, limits: .init())
        XCTAssertEqual(v.inputWidth, 768)
        XCTAssertEqual(v.vocabularies.map(\.column), [180, 316, 413, 440, 644])
        XCTAssertEqual(v.vocabularies.map(\.keys.count), [10425, 2266, 2190, 2293, 2241])
        for vocab in v.vocabularies {
            XCTAssertEqual(Set(vocab.keys).count, vocab.keys.count, "column \(vocab.column) keys are unique")
            XCTAssertEqual(Set(vocab.values), Set(1...Int64(vocab.values.count)), "column \(vocab.column) indices are 1…n")
        }
    }

    /// Swapping which Const nodes initialise two tables must move the vocabularies with them:
    /// the mapping follows the graph, not the order of the Const nodes.
    func testVocabularyMappingFollowsTheTableInitialisersNotConstOrder() throws {
        let saved = try member(try zipBytes(Self.b32), suffix: "saved_model.pb")
        var model = try Tensorflow_SavedModel(serializedBytes: saved)
        var nodes = model.metaGraphs[0].graphDef.node
        let a = try XCTUnwrap(nodes.firstIndex { $0.input == ["StatefulPartitionedCall", "Const_8", "Const_9"] })
        let b = try XCTUnwrap(nodes.firstIndex { $0.input == ["StatefulPartitionedCall_2", "Const_10", "Const_11"] })
        nodes[a].input = ["StatefulPartitionedCall", "Const_10", "Const_11"]
        nodes[b].input = ["StatefulPartitionedCall_2", "Const_8", "Const_9"]
        model.metaGraphs[0].graphDef.node = nodes
        let v = try SavedModelVocabularies(savedModel: try model.serializedData(), limits: .init())
        XCTAssertEqual(v.vocabularies.map(\.column), [92, 133, 312])
        XCTAssertEqual(v.vocabularies.map(\.keys.count), [747, 1566, 745])
        XCTAssertEqual(v.vocabularies.map(\.keysNode), ["Const_10", "Const_8", "Const_12"])
    }

    func testVocabularyTraceRefusesALookupThatDoesNotReadAnInputColumn() throws {
        let saved = try member(try zipBytes(Self.b32), suffix: "saved_model.pb")
        var model = try Tensorflow_SavedModel(serializedBytes: saved)
        var library = model.metaGraphs[0].graphDef.library.function
        for f in library.indices where library[f].signature.name.hasPrefix("__inference__wrapped_model") {
            for n in library[f].nodeDef.indices where library[f].nodeDef[n].op == "AsString" {
                library[f].nodeDef[n].op = "Identity"  // the lookup now reads the raw split output
            }
        }
        model.metaGraphs[0].graphDef.library.function = library
        assertThrows(.unsupported, containing: "not AsString") {
            _ = try SavedModelVocabularies(savedModel: try model.serializedData(), limits: .init())
        }
    }

    func testSavedModelDecodingRespectsTheDepthLimit() throws {
        let saved = try member(try zipBytes(Self.b32), suffix: "saved_model.pb")
        var limits = ReaderLimits()
        limits.maxDepth = 3
        assertThrows(.limitExceeded, containing: "nesting") {
            _ = try SavedModelVocabularies(savedModel: saved, limits: limits)
        }
    }

    // MARK: end to end

    func testB32MatchesTensorFlowReference() throws {
        let model = try convert(try zipBytes(Self.b32), fileName: Self.b32 + ".zip")
        let r = try compare(model, reference: Self.b32)
        XCTAssertEqual(r.rows, 128)
        XCTAssertLessThanOrEqual(r.maxError, 2e-6)
        XCTAssertEqual(r.flipped, 0)
        XCTAssertEqual(model.card.task, .binaryNSFW)
        XCTAssertEqual(model.card.backbone, "ViT-B-32/openai")
        XCTAssertEqual(model.card.outputKind, .probability)
        XCTAssertEqual(model.card.threshold, 0.5)
        XCTAssertEqual(model.source.sourceFormat, "savedmodel-zip")
        XCTAssertEqual(model.graph.map(\.opName),
                       ["impute_nan", "categorical_lookup", "normalize", "dense", "relu", "dense", "relu", "dense", "sigmoid"])
        XCTAssertEqual(model.tensor(named: "linear_1.weight")?.shape, [32, 512], "Dense kernels are stored [out, in]")
    }

    func testL14MatchesTensorFlowReference() throws {
        let model = try convert(try zipBytes(Self.l14), fileName: Self.l14 + ".zip")
        let r = try compare(model, reference: Self.l14)
        XCTAssertEqual(r.rows, 128)
        XCTAssertLessThanOrEqual(r.maxError, 2e-6)
        XCTAssertEqual(r.flipped, 0)
        XCTAssertEqual(model.card.backbone, "ViT-L-14/openai")
        XCTAssertEqual(model.card.embeddingDim, 768)
        XCTAssertEqual(model.tensors.filter { $0.name.hasPrefix("linear_") }.count, 8)
    }

    /// The same reference check fails when the categorical encoding is skipped, so the check
    /// above can fail.
    func testReferenceFailsWhenTheCategoricalEncodingIsSkipped() throws {
        for name in [Self.b32, Self.l14] {
            var model = try convert(try zipBytes(name), fileName: name + ".zip")
            model.graph.removeAll { if case .categoricalLookup = $0 { return true } else { return false } }
            let r = try compare(model, reference: name)
            XCTAssertGreaterThan(r.maxError, 1e-3, "\(name): raw column values instead of vocabulary indices must show")
        }
    }

    func testKeyDTypeSurvivesTheNativeFileAndOnlyF32OrF64AreAccepted() throws {
        var model = try convert(try zipBytes(Self.b32), fileName: Self.b32 + ".zip")
        let reread = try NativeModel(bytes: try model.serialized())
        XCTAssertEqual(reread.graph, model.graph)
        XCTAssertTrue(try model.metadata()["graph"]?.contains("\"key_dtype\":\"F32\"") ?? false)
        for i in model.graph.indices {
            if case .categoricalLookup(let cols) = model.graph[i] {
                model.graph[i] = .categoricalLookup(cols.map { var c = $0; c.keyDType = .u8; return c })
            }
        }
        assertThrows(.mismatch, containing: "key_dtype U8") { _ = try Scorer(model: model) }
    }

    func testConversionIsDeterministic() throws {
        let zip = try zipBytes(Self.b32)
        let a = try convert(zip, fileName: Self.b32 + ".zip").serialized()
        let b = try convert(zip, fileName: Self.b32 + ".zip").serialized()
        XCTAssertEqual(a, b)
        XCTAssertEqual(try NativeModel(bytes: a).graph.count, 9)
    }

    /// A float64 input whose `%f` differs from that of its float32 rounding is looked up the
    /// way the graph does it (Cast to float32, then AsString): as the float32 value.
    func testCategoricalKeyIsFormattedAfterRoundingToFloat32() throws {
        let model = try convert(try zipBytes(Self.b32), fileName: Self.b32 + ".zip")
        var f64Model = model
        for i in model.graph.indices {
            if case .categoricalLookup(let cols) = model.graph[i] {
                XCTAssertEqual(cols.map(\.keyDType), [.f32, .f32, .f32])
                f64Model.graph[i] = .categoricalLookup(cols.map { var c = $0; c.keyDType = nil; return c })
            }
        }
        let f32Scorer = try Scorer(model: model)
        let f64Scorer = try Scorer(model: f64Model)
        let keys = try XCTUnwrap(model.tensor(named: "encoding.92.keys")).data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        // For a key k, take the largest float32 w that prints as k; a double x just past the
        // %f rounding boundary above w, but less than half a float32 step from w, prints as the
        // next six-decimal string while float32(x) is w again, which prints as k.
        var checked = 0
        for k in keys {
            guard let kd = Double(k) else { continue }
            var w = Float(kd + 5e-7)
            var steps = 0
            while percentF(Double(w)) != k, steps < 64 { w = w.nextDown; steps += 1 }
            guard percentF(Double(w)) == k else { continue }
            let x = Double(w) + Double(w.ulp) * 0.49
            guard Float(x) == w, percentF(x) != k else { continue }
            var row = [Double](repeating: 0, count: 512)
            row[92] = x
            let ours = try f32Scorer.score(row, rows: 1).scores[0]
            row[92] = Double(w)
            let asFloat32 = try f32Scorer.score(row, rows: 1).scores[0]
            XCTAssertEqual(ours, asFloat32, "x = \(x) must score as float32(x) = \(w) (key \(k))")
            row[92] = x
            if try f64Scorer.score(row, rows: 1).scores[0] != ours { checked += 1 }
            if checked >= 3 { break }
        }
        XCTAssertEqual(checked, 3, "inputs where float64 %f formatting would give another result exist and are handled")
    }

    // MARK: refusals

    func testRefusesAnUnsupportedLayerClassByName() throws {
        let zip = try rebuilt(try zipBytes(Self.b32), suffix: "keras_metadata.pb") { data in
            var meta = try Keras_SavedMetadata(serializedBytes: data)
            let root = try XCTUnwrap(meta.nodes.firstIndex { $0.nodePath == "root" })
            meta.nodes[root].metadata = meta.nodes[root].metadata.replacingOccurrences(of: "\"class_name\": \"ReLU\"", with: "\"class_name\": \"PReLU\"")
            data = try meta.serializedData()
        }
        assertThrows(.unsupported, containing: "PReLU") { _ = try self.convert(zip, fileName: "x.zip") }
    }

    func testRefusesAnEncodingOtherThanNoneOrInt() throws {
        let zip = try rebuilt(try zipBytes(Self.b32), suffix: "keras_metadata.pb") { data in
            var meta = try Keras_SavedMetadata(serializedBytes: data)
            let root = try XCTUnwrap(meta.nodes.firstIndex { $0.nodePath == "root" })
            meta.nodes[root].metadata = meta.nodes[root].metadata.replacingOccurrences(of: "\"int\"", with: "\"one_hot\"")
            data = try meta.serializedData()
        }
        assertThrows(.unsupported, containing: "one_hot") { _ = try self.convert(zip, fileName: "x.zip") }
    }

    func testRefusesConfigWhoseCategoricalColumnsDisagreeWithTheGraph() throws {
        let zip = try rebuilt(try zipBytes(Self.b32), suffix: "keras_metadata.pb") { data in
            var meta = try Keras_SavedMetadata(serializedBytes: data)
            let root = try XCTUnwrap(meta.nodes.firstIndex { $0.nodePath == "root" })
            var text = meta.nodes[root].metadata
            let r = try XCTUnwrap(text.range(of: "\"none\""))
            text.replaceSubrange(r, with: "\"int\"")  // column 0 now claims to be categorical
            meta.nodes[root].metadata = text
            data = try meta.serializedData()
        }
        assertThrows(.mismatch, containing: "saved_model.pb looks up columns [92, 133, 312]") {
            _ = try self.convert(zip, fileName: "x.zip")
        }
    }

    func testRefusesAZipEntryWithADotDotPath() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try ZipArchive.write(members: [(name: "../evil/saved_model.pb", data: Data([1, 2, 3]))], to: dir.file("e.zip"))
        let zip = try Data(contentsOf: URL(fileURLWithPath: dir.file("e.zip")))
        assertThrows(.unsafe, containing: "..") { _ = try self.convert(zip, fileName: "e.zip") }
    }

    func testRefusesAZipOverTheUncompressedLimit() throws {
        var limits = ReaderLimits()
        limits.maxUncompressedBytes = 1_000_000  // saved_model.pb alone is 2.4 MB
        assertThrows(.limitExceeded, containing: "uncompressed limit") {
            _ = try self.convert(try self.zipBytes(Self.b32), fileName: "x.zip", limits: limits)
        }
    }

    func testRefusesAZipWithoutASavedModel() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try ZipArchive.write(members: [(name: "m/keras_metadata.pb", data: Data())], to: dir.file("n.zip"))
        let zip = try Data(contentsOf: URL(fileURLWithPath: dir.file("n.zip")))
        assertThrows(.unsupported, containing: "saved_model.pb") { _ = try self.convert(zip, fileName: "n.zip") }
    }
}
