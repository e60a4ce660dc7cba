namespace HybridServing.ClusterSimulator.Cluster;

/// <summary>
/// The simulation's virtual clock as a <see cref="TimeProvider"/>, so that product code which takes
/// one (the ControlPlane's demand tracker and its sliding window) runs on virtual time unchanged.
/// Only reading the time is supported: nothing in the simulation waits on timers, the event loop
/// calls everything at its virtual moment.
/// </summary>
internal sealed class VirtualClock(Func<double> seconds) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => SimulatedCluster.At(seconds());

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => GetUtcNow().UtcTicks;
}
