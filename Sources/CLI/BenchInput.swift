import Foundation
import Runtime

/// Where `bench` takes its batches from, one after another: random unit rows held in memory
/// (one batch reused, or `--working-set-mib` of them cycled), or the rows of an `.npy` file
/// read as `score` reads them (memory-mapped, pages released behind each batch, from the top
/// again after the last full batch).
final class BenchInput {
    private enum Source {
        case memory(Data, batchBytes: Int, copies: Int, type: EmbeddingElementType)
        case file(NpyArray)
    }

    private let source: Source
    private let rows: Int
    private let columns: Int
    private var next = 0

    /// `rows` random unit rows of `columns` as `type`, repeated to fill `workingSetBytes`.
    init(random rows: Int, columns: Int, type: EmbeddingElementType, workingSetBytes: Int) {
        let values = Self.randomUnitRows(rows, columns)
        var input: Data
        switch type {
        case .float16: input = values.map { Float16($0) }.withUnsafeBytes { Data($0) }
        case .float32: input = values.withUnsafeBytes { Data($0) }
        case .float64: input = values.map { Double($0) }.withUnsafeBytes { Data($0) }
        }
        let batchBytes = input.count
        let copies = Swift.max(1, workingSetBytes / Swift.max(batchBytes, 1))
        if copies > 1 {
            var all = Data(capacity: copies * batchBytes)
            for _ in 0..<copies { all.append(input) }
            input = all
        }
        source = .memory(input, batchBytes: batchBytes, copies: copies, type: type)
        self.rows = rows
        self.columns = columns
    }

    /// Batches of `rows` rows of `embeddings`, which must hold at least that many.
    init(file embeddings: NpyArray, rows: Int) {
        precondition(embeddings.shape.count == 2 && embeddings.shape[0] >= rows)
        source = .file(embeddings)
        self.rows = rows
        self.columns = embeddings.shape[1]
    }

    /// Calls `body` with the next batch.
    func next(_ body: (EmbeddingBatch) throws -> Void) throws {
        switch source {
        case .memory(let data, let batchBytes, let copies, let type):
            try data.withUnsafeBytes { raw in
                try body(EmbeddingBatch(base: raw.baseAddress! + next * batchBytes, rows: rows, columns: columns, elementType: type))
            }
            next = (next + 1) % copies
        case .file(let embeddings):
            if next + rows > embeddings.shape[0] {
                embeddings.releaseRows(before: embeddings.shape[0])
                next = 0
            }
            try embeddings.withRows(next, rows, body)
            next += rows
            embeddings.releaseRows(before: next)
        }
    }

    static func randomUnitRows(_ rows: Int, _ dim: Int) -> [Float] {
        var rng = SystemRandomNumberGenerator()
        var values = (0..<(rows * dim)).map { _ in Float.random(in: -1...1, using: &rng) }
        for r in 0..<rows {
            let norm = (0..<dim).reduce(Float(0)) { $0 + values[r * dim + $1] * values[r * dim + $1] }.squareRoot()
            for c in 0..<dim { values[r * dim + c] /= norm }
        }
        return values
    }
}
