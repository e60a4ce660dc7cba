using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Xunit.Abstractions;

namespace HybridServing.Reliability.Tests;

/// <summary>Trial 2: a sidecar SIGKILLed and restarted under load.</summary>
public sealed class ComponentKillTrials(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);

    /// <summary>Longer than the sidecar's forced reconcile pass (5 s) and the ControlPlane's reconnect backoff: a needless reload would show.</summary>
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(8);

    /// <summary>Each sidecar once (the suite's time budget; every kill is a full re-sync).</summary>
    private const int SidecarCycles = 2;

    [Fact]
    public async Task Killed_sidecar_leaves_its_engine_serving_and_the_resync_loads_and_unloads_nothing()
    {
        string[] adapters = ["chat-a", "chat-b"];
        await using var stack = await LocalStack.StartAsync(engines: 2, adapters, replicas: 2);
        await stack.WaitPlacedAsync(adapters, 2, Generous);
        await Task.Delay(Settle);
        var loads = stack.Engines.Sum(e => e.CountLines(LocalStack.LoadedLine));
        var unloads = stack.Engines.Sum(e => e.CountLines(LocalStack.UnloadedLine));
        Assert.Equal(adapters.Length * 2, loads);

        var failures = new ConcurrentQueue<string>();
        var recoveries = new List<TimeSpan>();
        await using var trickleA = new Trickle(stack, adapters[0], failures);
        await using var trickleB = new Trickle(stack, adapters[1], failures);
        for (var cycle = 0; cycle < SidecarCycles; cycle++)
        {
            var sidecar = stack.Sidecars[cycle % 2];
            await sidecar.KillAsync();
            await Task.Delay(TimeSpan.FromSeconds(2)); // the engine serves alone meanwhile
            await sidecar.RestartAsync();
            var watch = Stopwatch.StartNew();
            // The restarted sidecar starts with an empty desired set: adapters in its /status come from the ControlPlane's EnsureAdapters.
            await LocalStack.WaitUntilAsync(async () => await LocalStack.SidecarAdaptersAsync(sidecar) is { } status
                && adapters.All(a => status.TryGetValue(a, out var phase) && phase.Equals("Loaded", StringComparison.OrdinalIgnoreCase)),
                Generous, $"{sidecar.Name} re-synced by the ControlPlane");
            recoveries.Add(watch.Elapsed);
            output.WriteLine($"cycle {cycle}: {sidecar.Name} re-synced {watch.Elapsed.TotalSeconds:0.00} s after its restart");
        }
        await Task.Delay(Settle);
        var (sentA, lostA) = await trickleA.StopAsync();
        var (sentB, lostB) = await trickleB.StopAsync();

        var extraLoads = stack.Engines.Sum(e => e.CountLines(LocalStack.LoadedLine)) - loads;
        var extraUnloads = stack.Engines.Sum(e => e.CountLines(LocalStack.UnloadedLine)) - unloads;
        new TrialFigures("2 sidecar SIGKILL + restart", SidecarCycles, sentA + sentB, lostA + lostB, recoveries,
            $"engine loads/unloads during the trial: {extraLoads}/{extraUnloads}; recovery = sidecar restart to re-synced (all adapters Loaded in its /status)").Record(output);
        Assert.True(failures.IsEmpty, string.Join(Environment.NewLine, failures));
        Assert.Equal(0, extraLoads);
        Assert.Equal(0, extraUnloads);
    }

    /// <summary>503, a Retry-After header, and an OpenAI-shaped error body.</summary>
    internal static bool IsCleanRetryLater(HttpResponseMessage response, string body)
    {
        if (response.StatusCode != HttpStatusCode.ServiceUnavailable || response.Headers.RetryAfter is null) return false;
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.GetProperty("error").GetProperty("message").GetString()!.Length > 0;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return false;
        }
    }
}
