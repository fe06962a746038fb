import CLI
import Core

Interrupts.install()
ClipSafetyCommand.main()
