using System.Diagnostics;
using HybridServing.KubeApiTestServer.Faults;
using Xunit.Abstractions;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// Trial 4: the Kubernetes API misbehaving under a ControlPlane process (Kubernetes home, real sidecars
/// and MockEngines), one fault at a time, each with a change declared while it lasts: a watch that ends in
/// 410 Gone after the history was compacted, watches dropped again and again, 409 conflicts and 429s on
/// status and finalizer writes, 500s on every list and watch for a while, and slow answers. After each
/// fault clears, every LoraAdapter's status must be true (Ready, observed generation current, every
/// adapter on the pods the status names, and those engines really hold it); during each outage the
/// requests the ControlPlane made are counted: a retry loop without backoff would make hundreds.
/// </summary>
public sealed class ApiFaultTrials(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(3);

    /// <summary>Requests per outage second allowed: the home's backoff starts at 0.5 s and doubles; a hot loop does hundreds.</summary>
    private const double MaxRequestsPerOutageSecond = 5;

    private static int Lists(HybridServing.KubeApiTestServer.KubeApiServer server) =>
        server.Requests.Count(r => r.Verb == "list" && r.Resource == "loraadapters" && !r.Injected);

    [Fact]
    public async Task Misbehaving_API_misses_no_change_runs_no_hot_loop_and_status_ends_true()
    {
        var declared = new Dictionary<string, string[]>(StringComparer.Ordinal);
        string[] all = ["f-a", "f-b", "f-c", "f-d", "f-e", "f-f", "f-g", "f-h", "f-i"];
        await using var stack = await KubeStack.StartAsync(engines: 2, controlPlanes: 1, all, TimeSpan.FromSeconds(6));
        var server = stack.Server;
        var recoveries = new List<TimeSpan>();
        var faults = 0;
        var notes = new List<string>();

        async Task DeclareAsync(string name, string[] adapters)
        {
            declared[name] = adapters;
            await stack.CreateAsync(stack.Adapter(name, adapters, replicas: 2));
        }
        async Task AllTrueAsync(string what, bool recovery = true)
        {
            var watch = Stopwatch.StartNew();
            foreach (var (name, adapters) in declared)
            {
                try
                {
                    await LocalStack.WaitUntilAsync(() => stack.StatusIsTrueAsync(name, adapters, 2), Generous, $"{name}'s status true after {what}");
                }
                catch (TimeoutException e)
                {
                    throw new TimeoutException($"{e.Message}; status {stack.Describe(name)}", e);
                }
            }
            if (recovery) recoveries.Add(watch.Elapsed);
            output.WriteLine($"{what}: every status true after {watch.Elapsed.TotalSeconds:0.00} s");
        }
        void Count(string what, int hits, TimeSpan lasted)
        {
            faults += hits;
            notes.Add($"{what}: {hits} in {lasted.TotalSeconds:0.0} s");
            output.WriteLine($"{what}: {hits} requests met the fault in {lasted.TotalSeconds:0.0} s");
            Assert.True(hits / lasted.TotalSeconds <= MaxRequestsPerOutageSecond, $"{what}: {hits} requests in {lasted.TotalSeconds:0.0} s (a retry loop without backoff)");
        }

        await DeclareAsync("start", ["f-a"]);
        await AllTrueAsync("start", recovery: false);
        await server.WaitForWatchesAsync(2, Generous);

        // 410 Gone: the watch is cut and cannot come back; changes happen; etcd compacts; then it may return.
        var down = server.InjectFault(new FaultRule("watch", "loraadapters", 100_000) { StatusCode = 503 });
        var cut = Stopwatch.StartNew();
        server.AbortWatches();
        await DeclareAsync("gone", ["f-b"]);
        await stack.SetAdaptersAsync("start", ["f-a", "f-c"]);
        declared["start"] = ["f-a", "f-c"];
        await LocalStack.WaitUntilAsync(() => Task.FromResult(down.Hits >= 1), Generous, "a watch attempt while down");
        var listsBefore = Lists(server);
        server.CompactHistory();
        server.ClearFaults();
        Count("watch 503 then 410", down.Hits, cut.Elapsed);
        faults++; // the 410 itself
        await AllTrueAsync("410 Gone");
        Assert.True(Lists(server) > listsBefore, "the 410 made the informer list again");

        // Dropped watches: cut three times, a change after each.
        for (var i = 0; i < 3; i++)
        {
            await server.WaitForWatchesAsync(1, Generous);
            faults += server.AbortWatches();
            await DeclareAsync($"dropped-{i}", [all[3 + i]]);
        }
        await AllTrueAsync("dropped watches");

        // 409 and 429 on the writes a new object causes (finalizer patch, status update).
        var conflict = server.InjectFault(new FaultRule("update", "loraadapters/status", 3) { StatusCode = 409 });
        var throttledStatus = server.InjectFault(new FaultRule("update", "loraadapters/status", 3) { StatusCode = 429, Message = "Too many requests, please try again later." });
        var throttledPatch = server.InjectFault(new FaultRule("patch", "loraadapters", 3) { StatusCode = 429, Message = "Too many requests, please try again later." });
        await DeclareAsync("contended", ["f-g"]);
        await AllTrueAsync("409 and 429 on writes");
        Assert.True(conflict.Hits + throttledStatus.Hits + throttledPatch.Hits > 0, "the writes met the faults");
        faults += conflict.Hits + throttledStatus.Hits + throttledPatch.Hits;
        notes.Add($"409/429 {conflict.Hits}+{throttledStatus.Hits}+{throttledPatch.Hits}");
        server.ClearFaults();

        // 500 on every list and watch for a while (the informers are cut first), with a change in the middle.
        var lists = server.InjectFault(new FaultRule("list", "loraadapters", 100_000) { StatusCode = 500 });
        var watches = server.InjectFault(new FaultRule("watch", "loraadapters", 100_000) { StatusCode = 500 });
        var outage = Stopwatch.StartNew();
        server.AbortWatches();
        await stack.SetAdaptersAsync("gone", ["f-b", "f-h"]);
        declared["gone"] = ["f-b", "f-h"];
        await Task.Delay(Outage);
        server.ClearFaults();
        Count("list/watch 500", lists.Hits + watches.Hits, outage.Elapsed);
        await AllTrueAsync("500s on list and watch");

        // Slow answers: every request waits 400 ms; a deletion and a change go through them.
        server.RequestLatency = TimeSpan.FromMilliseconds(400);
        await stack.DeleteAsync("dropped-0");
        declared.Remove("dropped-0");
        await stack.SetAdaptersAsync("contended", ["f-g", "f-i"]);
        declared["contended"] = ["f-g", "f-i"];
        await AllTrueAsync("slow answers (400 ms each)");
        await LocalStack.WaitUntilAsync(() => stack.NoEngineHoldsAsync(["f-d"]), Generous, "dropped-0's adapter unloaded");
        server.RequestLatency = TimeSpan.Zero;
        faults++;

        // Settled: no more writes once everything is true.
        var settled = server.Requests.Count(r => r.IsMutating && r.Resource == "loraadapters");
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(settled, server.Requests.Count(r => r.IsMutating && r.Resource == "loraadapters"));

        new TrialFigures("4 Kubernetes API faults (410, dropped watches, 409, 429, 500, slow)", faults, 0, 0, recoveries,
            $"requests that met each fault: {string.Join("; ", notes)}; recovery = fault cleared to every status true").Record(output);
    }
}
