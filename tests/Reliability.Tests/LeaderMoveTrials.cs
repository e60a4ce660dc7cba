using System.Diagnostics;
using Xunit.Abstractions;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// Trial 3 (Kubernetes home): two ControlPlane replicas elect a leader through a Lease against the API
/// test server; the leader is SIGKILLed (it cannot hand the Lease back), twice, each time with a change
/// declared while nobody leads. Leadership must move within the Lease's duration plus the election's
/// own granularity: KubernetesClient's LeaderElector (as client-go's) counts the Lease as expired
/// LeaseDuration after it last <em>saw</em> the record change, and it looks every RetryPeriod, so a
/// follower takes over at most LeaseDuration + 2 × RetryPeriod after the leader's last renewal (a killed
/// leader cannot hand the Lease back, as a stopping one does). The engines must see every
/// load exactly once: no load lost (each status true, each engine holding what it says) and none
/// duplicated (the MockEngines' own load log lines equal the distinct placements; no unloads).
/// </summary>
public sealed class LeaderMoveTrials(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Killed_leader_hands_over_within_the_lease_duration_without_duplicate_or_lost_loads()
    {
        string[] first = ["lead-a", "lead-b", "lead-c"];
        string[][] during = [["moved-a"], ["moved-b"]];
        await using var stack = await KubeStack.StartAsync(engines: 2, controlPlanes: 2, [.. first, .. during.SelectMany(d => d)], Lease);
        await stack.CreateAsync(stack.Adapter("steady", first, replicas: 1));
        await LocalStack.WaitUntilAsync(() => stack.StatusIsTrueAsync("steady", first, 1), Generous, "steady Ready on one engine per adapter");
        var placements = first.Length;
        Assert.Equal(placements, stack.Loads);

        var recoveries = new List<TimeSpan>();
        for (var cycle = 0; cycle < during.Length; cycle++)
        {
            var leaderName = stack.Leader ?? throw new InvalidOperationException("no leader");
            var leader = stack.ControlPlanes.Single(c => c.Name == leaderName);
            await leader.KillAsync();
            var killed = Stopwatch.StartNew();
            // Declared while nobody leads: the next leader must load it (a lost load otherwise).
            var name = $"during-{cycle}";
            await stack.CreateAsync(stack.Adapter(name, during[cycle], replicas: 1));

            await LocalStack.WaitUntilAsync(() => Task.FromResult(stack.Leader is { } l && l != leaderName), Generous, $"a new leader after {leaderName}");
            recoveries.Add(killed.Elapsed);
            output.WriteLine($"cycle {cycle}: killed {leaderName}; {stack.Leader} leads {killed.Elapsed.TotalSeconds:0.00} s after the kill (Lease {Lease.TotalSeconds:0} s, retry {stack.RetryPeriod.TotalSeconds:0.0} s)");

            await LocalStack.WaitUntilAsync(() => stack.StatusIsTrueAsync(name, during[cycle], 1), Generous, $"{name} loaded by the new leader");
            placements += during[cycle].Length;
            await leader.RestartAsync(); // back as a follower
        }
        Assert.True(await stack.StatusIsTrueAsync("steady", first, 1), "steady's status is still true");

        // Settled: a moment later still nothing loaded twice, nothing unloaded.
        await Task.Delay(Lease);
        new TrialFigures("3 ControlPlane leader SIGKILL (Kubernetes home, 2 replicas)", during.Length, 0, 0, recoveries,
            $"recovery = kill to a new Lease holder (Lease {Lease.TotalSeconds:0} s, retry period {stack.RetryPeriod.TotalSeconds:0.0} s); engine loads {stack.Loads} for {placements} placements, unloads {stack.Unloads}").Record(output);
        Assert.Equal(placements, stack.Loads);
        Assert.Equal(0, stack.Unloads);
        // The bound of the election itself, plus 1 s for two shared cores scheduling three processes' timers.
        var bound = Lease + 2 * stack.RetryPeriod + TimeSpan.FromSeconds(1);
        Assert.All(recoveries, r => Assert.True(r <= bound, $"takeover {r.TotalSeconds:0.00} s after the kill (bound {bound.TotalSeconds:0.0} s)"));
    }
}
