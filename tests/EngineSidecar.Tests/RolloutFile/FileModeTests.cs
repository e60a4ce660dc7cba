using System.Diagnostics;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json;
using Grpc.Core;
using HybridServing.Contracts.OpenAi;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.RolloutFile;

/// <summary>The lora-syncer's file mode end to end: its own example config, a Hub, a MockEngine, and a ConfigMap update.</summary>
public sealed class FileModeTests
{
    // rename(2) replaces ..data atomically, as the kubelet's os.Rename does; File.Move cannot replace a directory link.
    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(string from, string to);

    /// <summary>Lays out a mounted ConfigMap the way the kubelet does: a timestamped directory, <c>..data</c> pointing
    /// at it, and the visible file as a symlink through <c>..data</c>. An update swaps <c>..data</c> atomically.</summary>
    private static void WriteConfigMap(string mount, string version, string content)
    {
        var dataDir = Path.Combine(mount, "..2026_11_24_" + version);
        Directory.CreateDirectory(dataDir);
        File.WriteAllText(Path.Combine(dataDir, "configmap.yaml"), content);
        var tmpLink = Path.Combine(mount, "..data_tmp");
        Directory.CreateSymbolicLink(tmpLink, Path.GetFileName(dataDir));
        Assert.Equal(0, Rename(tmpLink, Path.Combine(mount, "..data")));
        var visible = Path.Combine(mount, "configmap.yaml");
        if (!File.Exists(visible) && !Directory.Exists(visible)) File.CreateSymbolicLink(visible, Path.Combine("..data", "configmap.yaml"));
    }

    private static async Task<string[]> EngineAdaptersAsync(Uri engine)
    {
        using var http = new HttpClient { BaseAddress = engine };
        var list = await http.GetFromJsonAsync<ModelList>("v1/models", OpenAiJson.Options);
        return list!.Data.Where(m => m.Parent is not null).Select(m => m.Id).Order().ToArray();
    }

    [Fact]
    public async Task Lora_syncer_example_loads_from_the_hub_and_configmap_updates_are_followed()
    {
        using var dir = new TempDirectory("fm");
        const string baseModel = "meta-llama/Llama-3.1-8B-Instruct";
        var food = TestAdapters.Write(dir.Combine("src"), "food", rank: 8, baseModel);
        await using var hub = await ArtifactServer.StartAsync();
        hub.AddAdapter("Kawon/llama3.1-food-finetune_v14_r8/resolve/main", food);
        await using var engine = await MockEngineHost.StartAsync("--model", baseModel, "--enable-lora", "--max-loras", "4");

        // The lora-syncer's example exactly, with only the port pointed at this test's engine.
        var mount = Directory.CreateDirectory(dir.Combine("config")).FullName;
        var seed = RolloutConfigTests.MountedSeedFile();
        WriteConfigMap(mount, "1", seed.Replace("port: 8000", $"port: {engine.Port}"));

        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"));
        settings.Remove("Sidecar:EngineUrl"); // file mode takes host and port from the file
        settings["Sidecar:Hub:Endpoint"] = hub.BaseUrl.ToString();
        await using var host = await SidecarHost.StartAsync(settings,
            ["--config", Path.Combine(mount, "configmap.yaml"), "--health-check-timeout", "10", "--health-check-interval", "0.1", "--reconcile-trigger", "1", "--config-validation"]);

        var state = await host.WaitForStateAsync(s => s.Adapters.Count == 2 && s.Adapters.All(a => a.Phase == AdapterPhase.Loaded), TimeSpan.FromSeconds(15), "seed adapters loaded");
        Assert.Equal(["food-review-1", "food-review-2"], await EngineAdaptersAsync(engine.BaseUrl));
        Assert.Equal(state.Adapters[0].LocalPath, state.Adapters[1].LocalPath);
        Assert.Equal(1, hub.Hits["Kawon/llama3.1-food-finetune_v14_r8/resolve/main/adapter_model.safetensors"]);
        Assert.Equal($"http://localhost:{engine.Port}/", state.Info.EngineUrl); // the lora-syncer's default host, the file's port

        // The desired set belongs to the file: gRPC writes are refused.
        var refused = await Assert.ThrowsAsync<RpcException>(() => host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest()).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, refused.StatusCode);
        Assert.Contains("file mode", refused.Status.Detail);

        // ConfigMap update by symlink swap: food-review-2 must go, "both" is in both lists and is skipped.
        WriteConfigMap(mount, "2", $$"""
            vLLMLoRAConfig:
              name: vllm-llama3-8b
              port: {{engine.Port}}
              defaultBaseModel: {{baseModel}}
              ensureExist:
                models:
                - id: food-review-1
                  source: Kawon/llama3.1-food-finetune_v14_r8
                - id: both
                  source: Kawon/llama3.1-food-finetune_v14_r8
              ensureNotExist:
                models:
                - id: food-review-2
                  source: Kawon/llama3.1-food-finetune_v14_r8
                - id: both
                  source: Kawon/llama3.1-food-finetune_v14_r8
            """);
        var sw = Stopwatch.StartNew();
        while ((await EngineAdaptersAsync(engine.BaseUrl)).Contains("food-review-2") && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(50);
        Assert.Equal(["food-review-1"], await EngineAdaptersAsync(engine.BaseUrl));
        Assert.Contains(CapturingLoggerProvider.Lines, l => l.Contains("Adapter both is listed in both ensureExist and ensureNotExist"));

        // An invalid update is refused as a whole and the previous set stays.
        WriteConfigMap(mount, "3", "vLLMLoRAConfig:\n  port: not-a-port\n");
        sw.Restart();
        while (!CapturingLoggerProvider.Lines.Any(l => l.Contains("'port' must be an integer")) && sw.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(50);
        Assert.Contains(CapturingLoggerProvider.Lines, l => l.Contains("keeping the previous desired set"));
        Assert.Equal(["food-review-1"], await EngineAdaptersAsync(engine.BaseUrl));
    }

    private static async Task WaitForEngineAdaptersAsync(Uri engine, string[] expected, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!(await EngineAdaptersAsync(engine)).SequenceEqual(expected))
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(15)) Assert.Fail($"{what}: the engine holds [{string.Join(", ", await EngineAdaptersAsync(engine))}]");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task The_engine_is_the_files_host_and_port_followed_when_the_file_appears_and_changes_and_refused_local_paths_say_how_to_allow_them()
    {
        // The lora-syncer's host/port, not localhost:8000; a file that is not there yet at start is followed when it appears.
        using var dir = new TempDirectory("fm2");
        const string baseModel = "meta-llama/Llama-3.1-8B-Instruct";
        var adapters = dir.Combine("adapters");
        var food = TestAdapters.Write(adapters, "food", rank: 8, baseModel);
        var outside = TestAdapters.Write(dir.Combine("elsewhere"), "far", rank: 8, baseModel);
        await using var first = await MockEngineHost.StartAsync("--model", baseModel, "--enable-lora", "--max-loras", "4");
        await using var second = await MockEngineHost.StartAsync("--model", baseModel, "--enable-lora", "--max-loras", "4");
        string Config(int port) => $$"""
            vLLMLoRAConfig:
              name: vllm-llama3-8b
              host: 127.0.0.1
              port: {{port}}
              defaultBaseModel: {{baseModel}}
              ensureExist:
                models:
                - id: food-review-1
                  source: {{food}}
                - id: far-away
                  source: {{outside}}
            """;

        var configFile = dir.Combine("configmap.yaml");
        var settings = SidecarHost.FastSettings(first.BaseUrl, dir.Combine("cache"), adapters);
        settings.Remove("Sidecar:EngineUrl");
        await using var host = await SidecarHost.StartAsync(settings,
            ["--config", configFile, "--health-check-timeout", "20", "--health-check-interval", "0.1", "--reconcile-trigger", "1"]);
        using var http = new HttpClient { BaseAddress = host.HttpUrl };
        // The file is read on the sidecar's first pass, which may come just after start: poll for the problem.
        string? problem = null;
        for (var until = DateTime.UtcNow.AddSeconds(10); problem is null && DateTime.UtcNow < until; await Task.Delay(50))
        {
            using var status = JsonDocument.Parse(await http.GetStringAsync("status"));
            problem = status.RootElement.GetProperty("configProblem").GetString();
        }
        Assert.Contains("cannot read", problem);

        await Task.Delay(300);
        File.WriteAllText(configFile, Config(first.Port));
        await WaitForEngineAdaptersAsync(first.BaseUrl, ["food-review-1"], "loaded on the file's engine");

        // The refusal says how to allow the folder, in the log line, /status and /health.
        var how = $"Allow it with Sidecar:AllowedLocalRoots:N={Path.GetDirectoryName(outside)} (environment Sidecar__AllowedLocalRoots__N)";
        var refused = await host.WaitForStateAsync(s => s.Adapter("far-away")?.Phase == AdapterPhase.Failed, TimeSpan.FromSeconds(10), "far-away refused");
        Assert.Equal("PathNotAllowed", refused.Adapter("far-away")!.Reason);
        Assert.Contains(CapturingLoggerProvider.Lines, l => l.Contains("Adapter far-away failed (PathNotAllowed)") && l.Contains(how));
        using (var status = JsonDocument.Parse(await http.GetStringAsync("status")))
        {
            Assert.Equal(JsonValueKind.Null, status.RootElement.GetProperty("configProblem").ValueKind);
            Assert.Equal($"http://127.0.0.1:{first.Port}/", status.RootElement.GetProperty("engineUrl").GetString());
            var far = status.RootElement.GetProperty("adapters").EnumerateArray().Single(a => a.GetProperty("name").GetString() == "far-away");
            Assert.Equal("PathNotAllowed", far.GetProperty("reason").GetString());
            Assert.Contains(how, far.GetProperty("message").GetString());
        }
        Assert.Equal("Degraded", await http.GetStringAsync("health"));

        // A new port in the file moves the sidecar to that engine, which gets the desired set.
        File.WriteAllText(configFile, Config(second.Port));
        await WaitForEngineAdaptersAsync(second.BaseUrl, ["food-review-1"], "loaded on the engine the changed file names");
        Assert.Equal($"http://127.0.0.1:{second.Port}/", (await host.Client.GetInfoAsync(new GetInfoRequest())).EngineUrl);

        // The lora-syncer's toRemove: true unloads the adapter.
        File.WriteAllText(configFile, Config(second.Port).Replace($"source: {food}", $"source: {food}\n      toRemove: true"));
        await WaitForEngineAdaptersAsync(second.BaseUrl, [], "food-review-1 unloaded by toRemove: true");
    }
}
