//! AMQP transport (lapin): see design.md.
