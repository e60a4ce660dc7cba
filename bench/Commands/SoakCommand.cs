using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridServing.Bench.Cli;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Results;
using HybridServing.Contracts.Peft;
using HybridServing.Hosting;

namespace HybridServing.Bench.Commands;

/// <summary>
/// <c>soak</c>: the AppHost's local stack under steady mixed load (streaming and not, several
/// adapters and the base model) while adapters churn (a new LoraAdapter declared and an old one removed every
/// <c>--churn-every</c> seconds), for <c>--minutes</c>. Every process (engines, sidecars, ControlPlane, Gateway) is
/// sampled: working set, threads, open file descriptors. The baseline is the same process after the warm-up,
/// in the same run: "flat" is the last samples' median over the first samples' median (Linux: the service processes are
/// found under Aspire's <c>dotnet run</c> launchers through /proc). Every non-2xx counts as
/// unexpected (load goes only to adapters that are not being removed).
/// </summary>
internal static class SoakCommand
{
    public const string Help = """
        soak — steady mixed load with adapter churn on the AppHost's local stack; working set, threads and fds of every process over time.

        Options (defaults in brackets):
          --minutes N        length of the soak after the warm-up [20]
          --warmup S         seconds of load before the baseline samples [30]
          --engines N        MockEngines, each with its sidecar [3]
          --concurrency N    clients sending one request after another [6]
          --churn-every S    declare one new LoraAdapter and remove the oldest churned one every S seconds [20]
          --sample-every S   seconds between process samples [10]
          --results DIR      results folder [bench/results]
        """;

    private static readonly HashSet<string> Valued = ["--minutes", "--warmup", "--engines", "--concurrency", "--churn-every", "--sample-every", "--results"];

    /// <summary>Adapters under steady load, declared at the start and never removed.</summary>
    private static readonly string[] Steady = ["soak-a", "soak-b", "soak-c", "soak-d"];

    /// <summary>A process is flat when the end's median is within this factor of the baseline's (working set), or this many above (threads, fds).</summary>
    private const double WorkingSetGrowth = 1.25;
    private const int CountSlack = 10;

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs("soak", args, Valued, new HashSet<string>());
        var minutes = a.Int("--minutes", 20, 1, 24 * 60);
        var warmup = a.Seconds("--warmup", 30, 5);
        var engines = a.Int("--engines", 3, 2, 8);
        var concurrency = a.Int("--concurrency", 6, 1, 64);
        var churnEvery = a.Seconds("--churn-every", 20, 2);
        var sampleEvery = a.Seconds("--sample-every", 10, 1);
        var resultsDir = a.String("--results", RepoPaths.DefaultResults);
        var baseModel = EnginePoolOptions.DefaultBaseModel;
        var shape = BaseModelShape.For(baseModel);

        var work = Path.Combine(Path.GetTempPath(), "hybridserving-bench", "soak-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var manifests = Directory.CreateDirectory(Path.Combine(work, "manifests")).FullName;
        var adapters = Directory.CreateDirectory(Path.Combine(work, "adapters")).FullName;
        var log = Path.Combine(work, "stack.log");
        try
        {
            var churnCount = (int)Math.Ceiling((warmup + TimeSpan.FromMinutes(minutes)) / churnEvery) + 2;
            var churned = Enumerable.Range(0, churnCount).Select(i => $"churn-{i:D4}").ToList();
            Progress.Log($"writing {Steady.Length + churned.Count} PEFT adapters (rank 8, {baseModel} shapes)");
            foreach (var (name, i) in Steady.Concat(churned).Select((n, i) => (n, i)))
                PeftAdapterWriter.Write(Path.Combine(adapters, name), shape, 8, ["q_proj", "v_proj"], 4099 + i);
            foreach (var name in Steady) Declare(manifests, adapters, name, baseModel);

            Progress.Log($"starting the AppHost: {engines} engines + sidecars, ControlPlane, Gateway (logs: {log})");
            await using var stack = await AspireStack.StartAsync([
                    "--manifests", manifests, "--adapter-root", adapters, "--base-model", baseModel,
                    "--engines", engines.ToString(CultureInfo.InvariantCulture), .. AspireStack.PortArgs(engines),
                    "--max-loras", "4", "--max-cpu-loras", "8", "--state-dir", Path.Combine(work, "state")],
                new Dictionary<string, IReadOnlyDictionary<string, string>>(), log, TimeSpan.FromMinutes(3), CancellationToken.None);
            string[] processes = [.. Enumerable.Range(0, engines).SelectMany(i => new[] { $"engine-{i}", $"engine-{i}-sidecar" }), "controlplane", "gateway"];
            using var watchStop = new CancellationTokenSource();
            var failedStack = stack.WatchAsync(watchStop.Token);

            using var http = new HttpClient { BaseAddress = stack.Endpoint("gateway"), Timeout = TimeSpan.FromSeconds(60) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AspireStack.ApiKey);
            Progress.Log("waiting until every steady adapter answers through the gateway");
            await WaitServedAsync(http, Steady, TimeSpan.FromMinutes(2));

            // Aspire starts each project through `dotnet run`: the service is that process's child (HybridServing.<X>).
            var services = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var name in processes)
            {
                var service = stack.ProcessIds.TryGetValue(name, out var launcher) ? ServiceProcess(launcher) : null;
                if (service is null) throw new InvalidOperationException($"no service process found for {name}");
                services[name] = service.Value;
            }
            Progress.Log($"sampling {string.Join(", ", services.Select(kv => $"{kv.Key} (pid {kv.Value})"))}");
            var counters = new LoadCounters();
            var total = warmup + TimeSpan.FromMinutes(minutes);
            using var stop = new CancellationTokenSource(total);
            var clock = Stopwatch.StartNew();
            var load = Enumerable.Range(0, concurrency).Select(i => DriveAsync(http, i, counters, stop.Token)).ToList();
            var churn = ChurnAsync(manifests, adapters, churned, baseModel, churnEvery, stop.Token);
            var samples = new List<Sample>();
            Progress.Log($"soak: {warmup.TotalSeconds:0} s warm-up, then {minutes} min; {concurrency} clients, churn every {churnEvery.TotalSeconds:0} s");
            while (!stop.IsCancellationRequested)
            {
                if (failedStack.IsCompleted) await failedStack; // a resource exited: the run is void
                foreach (var (name, pid) in services)
                    if (Read(pid) is { } s) samples.Add(s with { Process = name, At = clock.Elapsed });
                if (samples.Count > 0 && clock.Elapsed.TotalSeconds % 60 < sampleEvery.TotalSeconds)
                    Progress.Log($"  {clock.Elapsed.TotalMinutes:0.0} min: {counters.Sent} requests, {counters.Failed} not 2xx, {Volatile.Read(ref _churns)} churns");
                try { await Task.Delay(sampleEvery, stop.Token); }
                catch (OperationCanceledException) { }
            }
            await Task.WhenAll(load);
            var churns = await churn;
            await watchStop.CancelAsync();

            var report = new BenchReport("soak", a.Given);
            report.Notes.Add($"AppHost local stack on {Environment.ProcessorCount} shared cores: {engines} MockEngines ({baseModel} profile, max_loras 4, max_cpu_loras 8), one sidecar each, ControlPlane (local home), Gateway; each a process.");
            report.Notes.Add($"Load: {concurrency} clients, one chat completion after another, half streamed, over {string.Join(", ", Steady)} and the base model; {churns} churns (a new LoraAdapter declared, the oldest churned one removed).");
            report.Notes.Add($"Baseline: each process's median over the first three samples after the {warmup.TotalSeconds:0} s warm-up; end: the median over the last three.");
            var table = report.Table("Processes: baseline -> end (median of three samples)", "process", "working set MB", "threads", "fds", "working set ratio");
            var flat = true;
            foreach (var name in processes)
            {
                var mine = samples.Where(s => s.Process == name).ToList();
                var after = mine.Where(s => s.At >= warmup).ToList();
                if (after.Count < 6)
                {
                    table.Add(name, "too few samples", "", "", "");
                    flat = false;
                    continue;
                }
                var first = after.Take(3).ToList();
                var last = after.TakeLast(3).ToList();
                double Median(IEnumerable<double> xs) => xs.Order().ElementAt(1);
                var ws0 = Median(first.Select(s => s.WorkingSetMb));
                var ws1 = Median(last.Select(s => s.WorkingSetMb));
                var th0 = Median(first.Select(s => (double)s.Threads));
                var th1 = Median(last.Select(s => (double)s.Threads));
                var fd0 = Median(first.Select(s => (double)s.Fds));
                var fd1 = Median(last.Select(s => (double)s.Fds));
                var ok = ws1 <= ws0 * WorkingSetGrowth && th1 <= th0 + CountSlack && fd1 <= fd0 + CountSlack;
                flat &= ok;
                table.Add(name, $"{ws0:0} -> {ws1:0}", $"{th0:0} -> {th1:0}", $"{fd0:0} -> {fd1:0}", $"{ws1 / ws0:0.00}x{(ok ? "" : " (not flat)")}");
            }
            var requests = report.Table("Requests through the gateway", "sent", "2xx", "not 2xx", "by status");
            requests.Add(counters.Sent.ToString(CultureInfo.InvariantCulture), (counters.Sent - counters.Failed).ToString(CultureInfo.InvariantCulture),
                counters.Failed.ToString(CultureInfo.InvariantCulture), string.Join(", ", counters.ByStatus.OrderBy(k => k.Key).Select(k => $"{k.Key}: {k.Value}")));
            report.Targets.Add(new TargetCheck($"unexpected non-2xx over {minutes} min", counters.Failed.ToString(CultureInfo.InvariantCulture), "0", counters.Failed == 0));
            report.Targets.Add(new TargetCheck("working set, threads, fds of every process flat",
                flat ? "flat" : "growth (see the table)", $"end <= {WorkingSetGrowth:0.00}x baseline working set, <= +{CountSlack} threads and fds", flat));
            report.Data["samples"] = new JsonArray([.. samples.Select(s => (JsonNode?)new JsonObject
            {
                ["process"] = s.Process, ["seconds"] = Math.Round(s.At.TotalSeconds, 1), ["workingSetMb"] = Math.Round(s.WorkingSetMb, 1), ["threads"] = s.Threads, ["fds"] = s.Fds,
            })]);
            if (minutes < 20) report.Notes.Add($"This run lasted {minutes} min, not the 20 the issue asks for.");
            report.Write(resultsDir);
            return counters.Failed == 0 && flat ? 0 : 1;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private static int _churns;

    /// <summary>The first process under <paramref name="launcher"/> (itself included) running a HybridServing executable or dll, not the SDK's <c>dotnet run</c>.</summary>
    private static int? ServiceProcess(int launcher)
    {
        var queue = new Queue<int>([launcher]);
        while (queue.Count > 0)
        {
            var pid = queue.Dequeue();
            string cmdline;
            try { cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' '); }
            catch (IOException) { continue; }
            if (cmdline.Contains("HybridServing.", StringComparison.Ordinal) && !cmdline.Contains(" run ", StringComparison.Ordinal)) return pid;
            foreach (var task in Directory.Exists($"/proc/{pid}/task") ? Directory.GetDirectories($"/proc/{pid}/task") : [])
            {
                var children = Path.Combine(task, "children");
                if (!File.Exists(children)) continue;
                foreach (var child in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    if (int.TryParse(child, NumberStyles.Integer, CultureInfo.InvariantCulture, out var c)) queue.Enqueue(c);
            }
        }
        return null;
    }

    private sealed record Sample(string Process, TimeSpan At, double WorkingSetMb, int Threads, int Fds);

    /// <summary>Working set and threads from the process, open fds from /proc (Linux); null once it is gone.</summary>
    private static Sample? Read(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            var fds = Directory.Exists($"/proc/{pid}/fd") ? Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length : -1;
            return new Sample("", TimeSpan.Zero, p.WorkingSet64 / 1e6, p.Threads.Count, fds);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private sealed class LoadCounters
    {
        private int _sent;
        private int _failed;
        public System.Collections.Concurrent.ConcurrentDictionary<string, int> ByStatus { get; } = new(StringComparer.Ordinal);
        public int Sent => Volatile.Read(ref _sent);
        public int Failed => Volatile.Read(ref _failed);

        public void Count(string status, bool ok)
        {
            Interlocked.Increment(ref _sent);
            if (!ok) Interlocked.Increment(ref _failed);
            ByStatus.AddOrUpdate(status, 1, (_, n) => n + 1);
        }
    }

    private static async Task DriveAsync(HttpClient http, int client, LoadCounters counters, CancellationToken stop)
    {
        var random = new Random(client);
        string[] models = [.. Steady, EnginePoolOptions.DefaultBaseModel];
        while (!stop.IsCancellationRequested)
        {
            var body = JsonSerializer.Serialize(new
            {
                model = models[random.Next(models.Length)],
                stream = random.Next(2) == 0,
                max_tokens = random.Next(8, 64),
                messages = new[] { new { role = "user", content = "How long does delivery take?" } },
            });
            try
            {
                using var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), CancellationToken.None);
                var text = await response.Content.ReadAsStringAsync(CancellationToken.None);
                // A stream that the gateway ended with an error event is not a success either.
                var ok = response.IsSuccessStatusCode && !(text.StartsWith("data:", StringComparison.Ordinal) && text.Contains("\"error\"", StringComparison.Ordinal));
                counters.Count(((int)response.StatusCode).ToString(CultureInfo.InvariantCulture) + (ok || !response.IsSuccessStatusCode ? "" : " (error event)"), ok);
            }
            catch (HttpRequestException e)
            {
                counters.Count("client: " + e.HttpRequestError, false);
            }
        }
    }

    private static async Task<int> ChurnAsync(string manifests, string adapters, List<string> names, string baseModel, TimeSpan every, CancellationToken stop)
    {
        var live = new Queue<string>();
        var next = 0;
        while (!stop.IsCancellationRequested && next < names.Count)
        {
            try { await Task.Delay(every, stop); }
            catch (OperationCanceledException) { break; }
            Declare(manifests, adapters, names[next], baseModel);
            live.Enqueue(names[next++]);
            if (live.Count > 2) File.Delete(Path.Combine(manifests, live.Dequeue() + ".yaml"));
            Interlocked.Increment(ref _churns);
        }
        return Volatile.Read(ref _churns);
    }

    private static void Declare(string manifests, string adapters, string name, string baseModel)
    {
        var temp = Path.Combine(manifests, $".{name}.tmp");
        File.WriteAllText(temp, $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: {name}
              namespace: default
            spec:
              baseModel: {baseModel}
              adapterSource:
                type: local
                repository: {adapters}
                adapters: [{name}]
              deploymentConfig:
                replicas:
                  min: 2
                  max: 2
            """);
        File.Move(temp, Path.Combine(manifests, name + ".yaml"));
    }

    private static async Task WaitServedAsync(HttpClient http, IEnumerable<string> models, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        foreach (var model in models)
        {
            while (true)
            {
                var body = JsonSerializer.Serialize(new { model, max_tokens = 4, messages = new[] { new { role = "user", content = "hi" } } });
                using var response = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
                if (response.IsSuccessStatusCode) break;
                if (deadline.Elapsed > timeout) throw new InvalidOperationException($"{model} not served within {timeout.TotalSeconds:0} s: {(int)response.StatusCode}");
                await Task.Delay(500);
            }
        }
    }
}
