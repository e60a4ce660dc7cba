using HybridServing.Bench.Cli;
using HybridServing.Bench.Commands;
using HybridServing.Bench.Hosting;
using HybridServing.Bench.Results;
using HybridServing.Bench.Shared;

// HybridServing benchmarks (docs/benchmarks.md): ratios against baselines measured in the same run.
const string usage = """
    usage: dotnet run -c Release --project bench -- <command> [options]

    commands:
      placement          ControlPlane placement solver: 10,000 adapters x 1,000 engines, and one adapter added (BenchmarkDotNet)
      engine-rate        requests/s one MockEngine sustains in zero-latency mode
      gateway-overhead   engine directly vs YARP pass-through vs HybridServing Gateway: latency, throughput, memory
      declared-to-routable  new LoraAdapter manifest -> loaded and routable on its engines (AppHost local stack)
      churn              10,000 adapters on 64 engines through the Kubernetes home: time to Ready, mutating API calls/s
      dashboard          k8s/monitoring's Grafana dashboard charted from a real run (AppHost stack, Prometheus, varying load)
      onnx-lora          ONNX backend decode step: tokens/s and step latency, batch 1/8/32 x 0/1/4 adapters, ratio to base
      soak               steady mixed load with adapter churn on the local stack; memory, threads, fds of every process flat, no non-2xx

    <command> --help lists its options. Results are appended to bench/results/local/<command>.md and .json
    (git-ignored), or with --record to the tracked bench/results/<command>.md and .json that the README quotes.
    --repeat N runs the command N times, each in a fresh process, and reports every target's figures with their
    min-max spread (bench/results[/local]/<command>-spread.md).
    """;

if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
{
    Console.WriteLine(usage);
    return args.Length == 0 ? 2 : 0;
}

RepoPaths.Record = BenchRun.TakeRecord(ref args);
var command = args[0];
var rest = args[1..];
if (Repeat.Take(ref rest) is { } repeat)
{
    try
    {
        return await Repeat.RunAsync(command, rest, repeat, RepoPaths.Record);
    }
    catch (BenchUsageException e)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        return 2;
    }
}
var help = rest.Any(a => a is "--help" or "-h");
try
{
    return command switch
    {
        "placement" when help => Print(PlacementCommand.Help),
        "placement" => PlacementCommand.Run(rest),
        "engine-rate" when help => Print(EngineRateCommand.Help),
        "engine-rate" => await EngineRateCommand.RunAsync(rest),
        "gateway-overhead" when help => Print(GatewayOverheadCommand.Help),
        "gateway-overhead" => await GatewayOverheadCommand.RunAsync(rest),
        "declared-to-routable" when help => Print(DeclaredToRoutableCommand.Help),
        "declared-to-routable" => await DeclaredToRoutableCommand.RunAsync(rest),
        "churn" when help => Print(ChurnCommand.Help),
        "churn" => await ChurnCommand.RunAsync(rest),
        "dashboard" when help => Print(DashboardCommand.Help),
        "dashboard" => await DashboardCommand.RunAsync(rest),
        "onnx-lora" when help => Print(OnnxLoraCommand.Help),
        "onnx-lora" => OnnxLoraCommand.Run(rest),
        "soak" when help => Print(SoakCommand.Help),
        "soak" => await SoakCommand.RunAsync(rest),
        PassThroughProxy.Command => await PassThroughProxy.RunAsync(rest),
        _ => throw new BenchUsageException($"unknown command '{command}' (placement, engine-rate, gateway-overhead, declared-to-routable, churn, dashboard, onnx-lora, soak; --help)"),
    };
}
catch (BenchUsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

static int Print(string text)
{
    Console.WriteLine(text);
    return 0;
}
