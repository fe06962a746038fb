import Foundation
import XCTest
@testable import Inspect

/// Bits of the first row of `SeededInputs(seed: 0, columns: 4)`, computed independently by a
/// Python transcription of the same algorithm (IEEE double arithmetic, no libm).
enum SeededInputsPin {
    static let seed0columns4: [UInt64] = [0xBFC5_2424_5AC2_D569, 0x3FB3_6728_197B_2A3E, 0x3FEE_F127_69EB_0577, 0xBFC6_E661_4F9E_F1C4]
}

final class PortableMathTests: XCTestCase {
    func testLogAgreesWithLibm() {
        for x in [1e-300, 1e-16, 0x1p-53, 0.001, 0.3, 0.5, 0.999_999, 1.0] {
            XCTAssertEqual(PortableMath.log(x), Foundation.log(x), accuracy: 4e-16 * Swift.max(1, Swift.abs(Foundation.log(x))), "\(x)")
        }
        XCTAssertEqual(PortableMath.log(0), -.infinity)
        XCTAssertTrue(PortableMath.log(-1).isNaN)
    }

    func testSinCosAgreeWithLibm() {
        for i in 0..<1000 {
            let u = Double(i) / 1000
            let (s, c) = PortableMath.sinCos(twoPi: u)
            XCTAssertEqual(s, Foundation.sin(2 * Double.pi * u), accuracy: 1e-14)
            XCTAssertEqual(c, Foundation.cos(2 * Double.pi * u), accuracy: 1e-14)
        }
    }
}
