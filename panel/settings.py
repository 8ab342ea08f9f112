"""Settings for the DCDN panel: one file, driven by environment variables.

Every default is safe for local use (SQLite, a filesystem Celery broker under var/,
DEBUG off unless asked). Production sets the variables listed in the README.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PANEL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _local_secret(filename: str, make) -> str:
    """A secret generated once under var/ for local use; production passes its own."""
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _new_secret_key() -> str:
    from django.core.management.utils import get_random_secret_key

    return get_random_secret_key()


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _local_secret("secret_key", _new_secret_key)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# Newest key first. Never derived from SECRET_KEY, so rotating one does not touch the other.
TOKEN_ENCRYPTION_KEYS = env_list("TOKEN_ENCRYPTION_KEYS") or [
    _local_secret("token_key", _new_fernet_key)
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "csp",
    "panel.dcdn",
    "accounts",
    "panel.instances",
    "panel.earnings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.HtmxLoginRedirectMiddleware",
    "panel.middleware.MethodNotAllowedPageMiddleware",
]

ROOT_URLCONF = "panel.urls"
WSGI_APPLICATION = "panel.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "panel.context_processors.csp_nonce",
                "accounts.context_processors.token_state",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'panel.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several local processes (web, worker, beat) share one file: wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Error reports hide anything that looks like a secret, DEBUG included.
DEFAULT_EXCEPTION_REPORTER_FILTER = "accounts.debug.PanelExceptionReporterFilter"

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "panel"),
        }
    }
else:
    # A file cache is shared by the web server and the worker on one machine.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["panel.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Production runs collectstatic and sets STATIC_MANIFEST=1 for hashed names.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not env_bool("STATIC_MANIFEST", False)
if WHITENOISE_USE_FINDERS:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing

LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
ACCOUNTS_ALLOW_SIGNUP = env_bool("ACCOUNTS_ALLOW_SIGNUP", False)
# How long a password re-entry authorises sensitive changes (token, payout).
REAUTH_SECONDS = int(os.environ.get("REAUTH_SECONDS", "300"))
LOGIN_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("LOGIN_FAILURE_WINDOW_SECONDS", "900"))
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks); login
# throttling takes the rightmost forwarded address that is not one of them.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "127.0.0.1,::1")

# --- Security headers and cookies ------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from the page (hx-headers), not the cookie
CSRF_FAILURE_VIEW = "accounts.views.csrf_failure"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000" if HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": [SELF],
        "frame-ancestors": ["'none'"],
    }
}

# --- DCDN API ----------------------------------------------------------------------------
DCDN_API_URL = os.environ.get("DCDN_API_URL", "http://127.0.0.1:8765/api/v1/compute").rstrip("/")
DCDN_EARNINGS_URL = os.environ.get("DCDN_EARNINGS_URL", DCDN_API_URL).rstrip("/")
DCDN_CONNECT_TIMEOUT = env_float("DCDN_CONNECT_TIMEOUT", 3.05)
DCDN_READ_TIMEOUT = env_float("DCDN_READ_TIMEOUT", 10.0)
# The provider allows 60 requests per minute per token; the panel stays at or under this.
DCDN_RATE_LIMIT_PER_MINUTE = int(os.environ.get("DCDN_RATE_LIMIT_PER_MINUTE", "60"))
# How long a caller may wait for budget before it gets RateLimited instead.
DCDN_BUDGET_MAX_WAIT = env_float("DCDN_BUDGET_MAX_WAIT", 5.0)
# The sliding window the provider's limit applies to, plus a margin so that latency
# differences between our clock and the provider's cannot push a burst over the limit.
DCDN_RATE_WINDOW_SECONDS = env_float("DCDN_RATE_WINDOW_SECONDS", 60.0)
DCDN_BUDGET_MARGIN_SECONDS = env_float("DCDN_BUDGET_MARGIN_SECONDS", 1.0)
# The budget's Redis (empty: REDIS_URL). A Redis of its own keeps budgets from being lost
# to a cache flush or eviction. Without either, a file-locked budget under VAR_DIR.
DCDN_BUDGET_REDIS_URL = os.environ.get("DCDN_BUDGET_REDIS_URL", "")
# Budget keys are prefixed like the cache's, which keeps deployments apart.
DCDN_BUDGET_KEY_PREFIX = os.environ.get(
    "DCDN_BUDGET_KEY_PREFIX", f"{os.environ.get('CACHE_KEY_PREFIX', 'panel')}:dcdn:budget"
)
# GETs only: attempts in all, and the first backoff (doubled each time, with jitter).
DCDN_RETRY_ATTEMPTS = int(os.environ.get("DCDN_RETRY_ATTEMPTS", "3"))
DCDN_RETRY_BACKOFF_SECONDS = env_float("DCDN_RETRY_BACKOFF_SECONDS", 0.5)
DCDN_CATALOG_CACHE_SECONDS = int(os.environ.get("DCDN_CATALOG_CACHE_SECONDS", "3600"))
# Instances snapshot: the most often one user's instances are fetched upstream.
DCDN_SNAPSHOT_SECONDS = env_float("DCDN_SNAPSHOT_SECONDS", 2.0)
DCDN_EARNINGS_CACHE_SECONDS = int(os.environ.get("DCDN_EARNINGS_CACHE_SECONDS", "60"))

# --- Celery ---------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "out").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Lets two deployments (or two test runs) share one broker without taking each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Picks up operations whose task message was lost (crashed worker, broker restart).
OPERATIONS_RECONCILE_SECONDS = env_float("OPERATIONS_RECONCILE_SECONDS", 30.0)
OPERATIONS_POLL_SECONDS = env_float("OPERATIONS_POLL_SECONDS", 2.0)
OPERATIONS_MAX_ATTEMPTS = int(os.environ.get("OPERATIONS_MAX_ATTEMPTS", "200"))
# An operation whose next step is this late has lost its task message: re-enqueue it.
OPERATIONS_RECONCILE_MARGIN_SECONDS = env_float("OPERATIONS_RECONCILE_MARGIN_SECONDS", 30.0)
# After a create with an unknown outcome, how long to look for it by name before
# declaring it not created (never shorter than a request can take).
OPERATIONS_ADOPT_GRACE_SECONDS = env_float("OPERATIONS_ADOPT_GRACE_SECONDS", 30.0)
# A root password nobody revealed is wiped after this long.
OPERATIONS_PASSWORD_TTL_SECONDS = env_float("OPERATIONS_PASSWORD_TTL_SECONDS", 24 * 3600.0)
OPERATIONS_MAX_BACKOFF_SECONDS = env_float("OPERATIONS_MAX_BACKOFF_SECONDS", 60.0)
# Payouts whose outcome is unknown are checked against the summary this often.
PAYOUTS_RECONCILE_SECONDS = env_float("PAYOUTS_RECONCILE_SECONDS", 60.0)
# A confirmation page is valid this long; then the form must be filled in again.
EARNINGS_PAYOUT_CONFIRM_SECONDS = int(os.environ.get("EARNINGS_PAYOUT_CONFIRM_SECONDS", "900"))
CELERY_BEAT_SCHEDULE = {
    "reconcile-payouts": {
        "task": "panel.earnings.tasks.payouts_reconcile_due",
        "schedule": PAYOUTS_RECONCILE_SECONDS,
    },
    "reconcile-operations": {
        "task": "panel.instances.tasks.operations_reconcile",
        "schedule": OPERATIONS_RECONCILE_SECONDS,
    },
}

# --- Logging: never log request bodies or headers (they carry tokens) ------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "urllib3": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}
