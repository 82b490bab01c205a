// Package turbine is the Turbine-style aggregator behind the turbine binary: one Hystrix
// stream connection per live instance of the discovery registry, and an aggregate of their
// latest samples served as one stream in the format the Hystrix dashboard reads.
package turbine
