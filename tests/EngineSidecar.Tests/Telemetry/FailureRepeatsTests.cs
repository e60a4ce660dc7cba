using HybridServing.EngineSidecar.Telemetry;

namespace HybridServing.EngineSidecar.Tests.Telemetry;

public sealed class FailureRepeatsTests
{
    [Fact]
    public void A_repeated_failure_is_logged_once_per_backoff_step_and_a_new_message_or_a_success_starts_over()
    {
        var repeats = new FailureRepeats();
        var logged = Enumerable.Range(1, 20).Select(_ => repeats.ShouldLog("engine poll: Connection refused")).Where(n => n is not null).ToList();
        Assert.Equal([1, 2, 4, 8, 16], logged);
        Assert.Equal(1, repeats.ShouldLog("engine poll: timed out"));
        Assert.Equal(2, repeats.ShouldLog("engine poll: timed out"));
        repeats.Succeeded();
        Assert.Equal(1, repeats.ShouldLog("engine poll: timed out"));
    }
}
