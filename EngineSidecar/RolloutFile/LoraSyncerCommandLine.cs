using System.Globalization;

namespace HybridServing.EngineSidecar.RolloutFile;

/// <summary>
/// Translates the lora-syncer's command line into configuration keys before the host parses it, so
/// <c>--config FILE --health-check-timeout 600 --reconcile-trigger 10 --config-validation</c> works as it did
/// for the Python sidecar. Needed because .NET's command-line provider would read the bare flag
/// <c>--config-validation</c> as taking the next argument as its value.
/// </summary>
internal static class LoraSyncerCommandLine
{
    private static readonly Dictionary<string, string> ValueFlags = new(StringComparer.Ordinal)
    {
        ["--config"] = "Sidecar:ConfigFile",
        ["--health-check-timeout"] = "Sidecar:EngineHealthTimeoutSeconds",
        ["--health-check-interval"] = "Sidecar:EngineHealthIntervalSeconds",
        ["--reconcile-trigger"] = "Sidecar:ReconcileIntervalSeconds",
        ["--metrics-port"] = "Kestrel:Endpoints:Http:Url",
    };

    /// <summary>Set when any seed flag was given: without Sidecar:EngineUrl the sidecar then runs in file mode,
    /// as the lora-syncer's Deployment (flags only) expects.</summary>
    public const string LoraSyncerFlagsKey = "Sidecar:LoraSyncerFlags";

    public static string[] Normalize(string[] args)
    {
        var result = new List<string>(args.Length);
        var syncerFlags = false;
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            var eq = arg.IndexOf('=');
            var flag = eq > 0 ? arg[..eq] : arg;
            if (flag == "--config-validation")
            {
                // store_true in the lora-syncer; an explicit value is accepted too.
                var value = eq > 0 ? arg[(eq + 1)..]
                    : i + 1 < args.Length && bool.TryParse(args[i + 1], out _) ? args[++i] : "true";
                if (!bool.TryParse(value, out var enabled))
                    throw new ArgumentException($"--config-validation takes true or false, not '{value}'.");
                result.Add($"--Sidecar:ConfigValidation={enabled}");
                syncerFlags = true;
                continue;
            }
            if (ValueFlags.TryGetValue(flag, out var key))
            {
                string value;
                if (eq > 0) value = arg[(eq + 1)..];
                else if (i + 1 < args.Length) value = args[++i];
                else throw new ArgumentException($"{flag} needs a value.");
                if (flag != "--config" && (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || number <= 0))
                    throw new ArgumentException($"{flag} takes a positive number, not '{value}'.");
                if (flag == "--metrics-port") value = $"http://0.0.0.0:{value}";
                result.Add($"--{key}={value}");
                syncerFlags = true;
                continue;
            }
            result.Add(arg);
        }
        if (syncerFlags) result.Add($"--{LoraSyncerFlagsKey}=true");
        return [.. result];
    }
}
