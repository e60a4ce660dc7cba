using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using HybridServing.TestKit;

namespace HybridServing.Bench.Hosting;

/// <summary>
/// The baseline proxy of docs/benchmarks.md §2: YARP's direct forwarding (<c>MapForwarder</c>, the same
/// <see cref="IHttpForwarder"/> the gateway uses) with no routing, tenancy or parsing — every request to
/// one upstream, unchanged. Runs as its own process (<c>serve-passthrough</c>), like the gateway.
/// </summary>
internal static class PassThroughProxy
{
    public const string Command = "serve-passthrough";

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new Cli.BenchArgs(Command, args, new HashSet<string> { "--port", "--upstream" }, new HashSet<string>());
        var port = a.Int("--port", 0, 1, 65535);
        if (port == 0) throw new Cli.BenchUsageException("--port: required");
        var upstreamText = a.String("--upstream", "");
        if (!Uri.TryCreate(upstreamText, UriKind.Absolute, out var upstream) || upstream.Scheme is not ("http" or "https"))
            throw new Cli.BenchUsageException($"--upstream: '{upstreamText}' is not an absolute http(s) URL");

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, port);
            // Like the gateway: large bodies are the gateway's concern, not the baseline's.
            k.Limits.MaxRequestBodySize = null;
        });
        builder.Services.AddHttpForwarder();
        var app = builder.Build();
        app.MapGet("/health", () => Microsoft.AspNetCore.Http.Results.Text("Healthy"));
        // The gateway's activity timeout (10 min), so long streams are treated alike.
        app.MapForwarder("/{**catch-all}", upstream.ToString().TrimEnd('/'), new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromMinutes(10) });
        await app.StartAsync();
        // Like the services (ServiceDefaults): stop when the harness that started us is gone.
        if (int.TryParse(Environment.GetEnvironmentVariable(ChildProcess.ParentPidVariable), out var parent) && parent > 0)
            _ = Task.Run(async () =>
            {
                while (ParentAlive(parent)) await Task.Delay(1000);
                await app.StopAsync();
            });
        await app.WaitForShutdownAsync();
        return 0;
    }

    private static bool ParentAlive(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }
}
