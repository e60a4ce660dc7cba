using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.ServiceDefaults.Tests;

public sealed class QuietRequestLogsTests
{
    private static ILoggerFactory Loggers(params (string Key, string Value)[] config)
    {
        var builder = WebApplication.CreateBuilder();
        foreach (var (k, v) in config) builder.Configuration[k] = v;
        builder.AddServiceDefaults();
        return builder.Build().Services.GetService(typeof(ILoggerFactory)) as ILoggerFactory
            ?? throw new InvalidOperationException("no logger factory");
    }

    private static bool Logs(ILoggerFactory f, string category, Microsoft.Extensions.Logging.LogLevel level) =>
        f.CreateLogger(category).IsEnabled(level);

    [Fact]
    public void Request_logs_are_off_at_information_and_on_at_debug_or_when_their_category_is_set()
    {
        var quiet = Loggers();
        Assert.False(Logs(quiet, "Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Information));
        Assert.False(Logs(quiet, "System.Net.Http.HttpClient.Default.LogicalHandler", LogLevel.Information));
        Assert.False(Logs(quiet, "Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.Error));
        Assert.True(Logs(quiet, "Microsoft.AspNetCore.Server.Kestrel", LogLevel.Warning));
        Assert.True(Logs(quiet, "HybridServing.Gateway", LogLevel.Information));

        Assert.True(Logs(Loggers(("Logging:LogLevel:Default", "Debug")), "Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Information));
        Assert.True(Logs(Loggers(("Logging:LogLevel:System.Net.Http.HttpClient", "Information")), "System.Net.Http.HttpClient.Default.LogicalHandler", LogLevel.Information));
    }
}
