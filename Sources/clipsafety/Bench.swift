import ArgumentParser
import CBLAS
import Foundation
import Runtime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure scoring speed: embeddings/s and GFLOP/s per batch size, next to this machine's sgemm rate.",
        discussion: "Inputs are random unit vectors. Scoring with and without the input check alternates in 5 rounds; figures are means. Figures go to stdout; nothing is written.")

    @Argument(help: "Models to measure (native or upstream files).")
    var models: [String]

    @Option(help: "Batch sizes, comma-separated.")
    var batchSizes: String = "1,64,4096"

    @Option(help: "Seconds to spend per measurement.")
    var seconds: Double = 1

    @Option(help: "Element type of the random input: float16, float32 or float64.")
    var inputType: String = "float32"

    @Option(help: "MiB of input to cycle through, so that batches come from memory rather than cache, as when streaming a file (default: one batch, reused).")
    var workingSetMib: Int = 0

    @Option(help: "Threads per batch (default: every core).")
    var threads: Int?

    @OptionGroup var limitOptions: LimitOptions

    var sizes: [Int] { batchSizes.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 && $0 <= 1 << 20 }) else {
            throw ValidationError("--batch-sizes takes positive integers up to 1048576, comma-separated")
        }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard EmbeddingElementType(rawValue: inputType) != nil else { throw ValidationError("--input-type must be float16, float32 or float64") }
        guard (0...4096).contains(workingSetMib) else { throw ValidationError("--working-set-mib must be in 0...4096") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be in 1...1024") }
    }

    func run() throws {
        try ExitStatus.run {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            // The machine's ceiling: OpenBLAS on every core. Scorers keep it at one thread
            // and split batches themselves (Sources/Runtime/Execution.swift).
            openblas_set_num_threads(Int32(cores))
            let peak = Self.sgemmRate(seconds: seconds)
            openblas_set_num_threads(1)
            print(String(format: "machine: %d cores, sgemm 4096x1024x1024 (OpenBLAS, %d threads): %.1f GFLOP/s", cores, cores, peak))
            print("model                                   batch   emb/s        µs/call    GFLOP/s  %sgemm  check")
            var measured: [(name: String, path: String, batch: Int, rowsPerSecond: Double)] = []
            for path in models {
                let scorer = try openScorer(path, limits: limitOptions.limits, threads: threads)
                for batch in sizes {
                    let m = try Self.measure(scorer, batch: batch, seconds: seconds, type: EmbeddingElementType(rawValue: inputType)!, workingSetBytes: workingSetMib << 20)
                    let gflops = m.rowsPerSecond * Double(scorer.flopsPerRow) / 1e9
                    print(pad(scorer.card.name, 38) + String(format: "  %6d  %11.0f  %9.1f  %8.2f  %5.0f%%  %4.1f%%", batch, m.rowsPerSecond,
                                 m.secondsPerCall * 1e6, gflops, 100 * gflops / peak, 100 * m.checkFraction))
                    measured.append((scorer.card.name, path, batch, m.rowsPerSecond))
                }
            }
            comparePyTorch(measured)
        }
    }

    struct Measurement {
        var rowsPerSecond: Double
        var secondsPerCall: Double
        /// Extra time of scoring with the input check (`scoreMeasuring`) relative to scoring alone.
        var checkFraction: Double
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

    static func measure(_ scorer: Scorer, batch: Int, seconds: Double, type: EmbeddingElementType, workingSetBytes: Int = 0) throws -> Measurement {
        let values = randomUnitRows(batch, scorer.inputWidth)
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
        let workspace = scorer.makeWorkspace(rows: batch)
        return try input.withUnsafeBytes { raw in
            var next = 0
            func nextBatch() -> EmbeddingBatch {
                defer { next = (next + 1) % copies }
                return EmbeddingBatch(base: raw.baseAddress! + next * batchBytes, rows: batch, columns: scorer.inputWidth, elementType: type)
            }
            _ = try scorer.score(nextBatch(), workspace: workspace)
            // Rounds of plain and checked scoring, alternated so that both see the same machine
            // (this kind of VM drifts from second to second); the figures are means over all rounds.
            var plain = 0.0, checked = 0.0
            let rounds = 5
            for _ in 0..<rounds {
                plain += try secondsPerCall(seconds: seconds / Double(2 * rounds)) { _ = try scorer.score(nextBatch(), workspace: workspace) }
                checked += try secondsPerCall(seconds: seconds / Double(2 * rounds)) { _ = try scorer.scoreMeasuring(nextBatch(), workspace: workspace) }
            }
            plain /= Double(rounds)
            return Measurement(rowsPerSecond: Double(batch) / plain, secondsPerCall: plain, checkFraction: checked / Double(rounds) / plain - 1)
        }
    }

    /// Mean seconds per call of `body` over at least `seconds` (and 3 calls).
    static func secondsPerCall(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
        var calls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while elapsed < seconds || calls < 3 {
            try body()
            calls += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return elapsed / Double(calls)
    }

    /// GFLOP/s of one large single-precision matrix product, the ceiling for dense heads.
    static func sgemmRate(seconds: Double) -> Double {
        let m = 4096, n = 1024, k = 1024
        let a = [Float](repeating: 0.5, count: m * k)
        let b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        var calls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while elapsed < seconds || calls < 2 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
            calls += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return Double(calls) * 2 * Double(m * n * k) / elapsed / 1e9
    }

    /// Runs benchmarks/pytorch_bench.py on the same models when python3 can import torch.
    func comparePyTorch(_ measured: [(name: String, path: String, batch: Int, rowsPerSecond: Double)]) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("benchmarks/pytorch_bench.py").path
        guard Self.python(["-c", "import torch"]) != nil else {
            print("PyTorch: skipped (python3 cannot import torch here)")
            return
        }
        guard FileManager.default.fileExists(atPath: script) else {
            print("PyTorch: skipped (\(script) is not here; run bench from a source checkout)")
            return
        }
        print("PyTorch (same graph, torch CPU):")
        for path in Set(measured.map(\.path)).sorted() {
            guard let out = Self.python([script, path, "--batch-sizes", batchSizes, "--seconds", String(seconds)]) else {
                print("  \(path): the PyTorch run failed")
                continue
            }
            for line in out.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count == 4, let batch = Int(f[1]), let rate = Double(f[2]) else { continue }
                let ours = measured.first { $0.path == path && $0.batch == batch }
                print("  " + pad(ours?.name ?? path, 36) + String(format: "  %6d  %11.0f emb/s  %8.1f µs/call  clipsafety/PyTorch %.2fx", batch, rate, Double(f[3]) ?? 0, (ours?.rowsPerSecond ?? 0) / rate))
            }
        }
    }

    /// Output of `python3 ARGS`, or nil when it fails.
    static func python(_ arguments: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }
}

/// `text` cut or padded with spaces to `width` characters.
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
}
