import Foundation
import Jobs

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    private let total: Int
    private let label: String
    private let enabled: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast

    init(total: Int, label: String) {
        self.total = total
        self.label = label
        self.enabled = isatty(2) == 1 && total > 0
    }

    func update(_ done: Int) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = now
        let fraction = Double(done) / Double(total)
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\r%@ [%@] %3.0f%% %@ rows/s ETA %@", label, bar, fraction * 100, compact(rate), duration(eta))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    private func compact(_ v: Double) -> String {
        v >= 1e6 ? String(format: "%.1fM", v / 1e6) : v >= 1e3 ? String(format: "%.1fk", v / 1e3) : String(format: "%.0f", v)
    }

    private func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}

/// One progress line over the whole folder on a terminal: shards done, rows/s, ETA (by bytes).
final class FolderProgress: FolderObserver {
    private var shards = 0
    private var bytes = 1
    private var enabled = false
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var shardsDone = 0
    private var bytesDone = 0
    private var bytesInShard = 0
    private var rows = 0

    func started(shards: Int, bytes: Int) {
        self.shards = shards
        self.bytes = Swift.max(bytes, 1)
        enabled = isatty(2) == 1 && shards > 0
    }

    func scored(rows count: Int, bytes b: Int) {
        rows += count
        bytesInShard += b
        draw()
    }

    func finishedShard(bytes shardBytes: Int) {
        shardsDone += 1
        bytesDone += Swift.max(shardBytes, 0)
        bytesInShard = 0
        draw(force: true)
    }

    /// Prints a line above the progress line.
    func message(_ line: String) {
        clear()
        printError(line)
        draw(force: true)
    }

    func finished() { clear() }

    private func clear() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }

    private func draw(force: Bool = false) {
        guard enabled else { return }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        let done = Swift.min(bytesDone + bytesInShard, bytes)
        let fraction = Double(done) / Double(bytes)
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(rows) / elapsed : 0
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        let width = 24
        let filled = Swift.min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let line = String(format: "\rshards %d/%d [%@] %3.0f%% %@ rows/s ETA %@", shardsDone, shards, bar, fraction * 100, compact(rate), duration(eta))
        FileHandle.standardError.write(Data(line.utf8))
    }

    private func compact(_ v: Double) -> String {
        v >= 1e6 ? String(format: "%.2fM", v / 1e6) : v >= 1e3 ? String(format: "%.1fk", v / 1e3) : String(format: "%.0f", v)
    }

    private func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
    }
}

